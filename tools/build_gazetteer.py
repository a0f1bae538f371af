"""Generate the CLDR part of the khabar gazetteer (countries, territories, world cities).

Usage::

    python tools/build_gazetteer.py            # writes khabar/data/gazetteer/cldr_places.tsv

Country and territory names in English, Arabic and Persian come from CLDR through Babel
(``Locale(...).territories``); city names from CLDR's time-zone exemplar cities, which name a few
hundred of the world's main cities in each locale. Babel is a build-time dependency only (extra
``build``): the generated TSV is committed and the package never imports Babel.

The output is deterministic (sorted rows, no timestamps) so a rebuild with the same Babel version
yields the same file. Hand-curated entries (people, organisations, outlets, short forms of
country names) live in ``curated_*.tsv`` beside it and are merged by id at load time.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

from babel import Locale

OUT = Path(__file__).resolve().parent.parent / "khabar" / "data" / "gazetteer" / "cldr_places.tsv"

# English canonical names where CLDR's display name is not the name news uses; ids are slugs of these.
EN_OVERRIDES = {
    "TR": "Turkey",
    "CZ": "Czech Republic",
    "MM": "Myanmar",
    "CD": "Democratic Republic of the Congo",
    "CG": "Republic of the Congo",
    "CI": "Ivory Coast",
    "PS": "Palestine",
    "KP": "North Korea",
    "KR": "South Korea",
    "HK": "Hong Kong",
    "MO": "Macau",
    "VA": "Vatican City",
    "FM": "Micronesia",
    "US": "United States",
    "GB": "United Kingdom",
    "UM": "United States Minor Outlying Islands",
    "TL": "East Timor",
    "CV": "Cape Verde",
    "SZ": "Eswatini",
    "EU": "European Union",
    "UN": "United Nations",
}
# Region codes kept (continents); the rest of CLDR's numeric regions are statistical groupings.
KEEP_REGIONS = {"002": "Africa", "019": "Americas", "142": "Asia", "150": "Europe", "009": "Oceania",
                "419": "Latin America", "145": "Western Asia"}
# Names CLDR gives a region that news uses for a country ("امریکا" is the United States in Persian).
NAME_OVERRIDES = {("019", "fa"): ["قاره آمریکا", "قاره‌های آمریکا"]}
SKIP_TERRITORIES = {"ZZ", "XA", "XB", "EZ", "QO", "001", "AQ", "CQ", "DG", "IC", "EA", "AC", "TA", "XK"}
ORG_TERRITORIES = {"EU", "UN"}
SKIP_ZONE_PREFIXES = ("Etc/", "Antarctica/", "Arctic/", "America/Indiana/", "America/Kentucky/",
                      "America/North_Dakota/", "America/Argentina/")
# Exemplar cities that are not cities a reader would call by that name, or that are ordinary words.
SKIP_ZONES = {"Pacific/Wake", "Pacific/Midway", "America/Nome", "Asia/Hovd", "Pacific/Truk", "Pacific/Ponape",
              "America/Coral_Harbour", "Atlantic/Stanley", "Pacific/Easter", "America/Metlakatla",
              "America/Yakutat", "America/Sitka", "America/Juneau", "America/Boise", "America/Menominee",
              "America/Thunder_Bay", "America/Rainy_River", "America/Nipigon", "America/Pangnirtung",
              "America/Rankin_Inlet", "America/Resolute", "America/Cambridge_Bay", "America/Inuvik",
              "America/Dawson", "America/Dawson_Creek", "America/Creston", "America/Fort_Nelson",
              "America/Swift_Current", "America/Goose_Bay", "America/Glace_Bay", "America/Moncton",
              "America/Atikokan", "America/Blanc-Sablon", "America/Iqaluit", "America/Whitehorse",
              "America/Yellowknife", "America/Santa_Isabel", "America/Ojinaga", "America/Matamoros",
              "America/Bahia_Banderas", "America/Merida", "America/Hermosillo", "America/Chihuahua",
              "America/Ciudad_Juarez", "America/Mazatlan", "America/Monterrey", "America/Danmarkshavn",
              "America/Scoresbysund", "America/Thule", "America/Adak", "America/Anchorage",
              "Asia/Famagusta", "Asia/Oral", "Asia/Qostanay", "Asia/Aqtau", "Asia/Aqtobe", "Asia/Atyrau",
              "Asia/Qyzylorda", "Asia/Srednekolymsk", "Asia/Ust-Nera", "Asia/Khandyga", "Asia/Chita",
              "Asia/Barnaul", "Asia/Tomsk", "Asia/Novokuznetsk", "Asia/Anadyr", "Asia/Magadan",
              "Asia/Sakhalin", "Asia/Kamchatka", "Europe/Busingen", "Europe/Ulyanovsk", "Europe/Astrakhan",
              "Europe/Saratov", "Europe/Kirov", "Europe/Uzhgorod", "Europe/Zaporozhye", "Pacific/Johnston",
              "Pacific/Enderbury", "Pacific/Kanton", "Pacific/Kiritimati", "Pacific/Chatham",
              "Pacific/Marquesas", "Pacific/Gambier", "Pacific/Pitcairn", "Pacific/Norfolk",
              "Pacific/Kosrae", "Pacific/Kwajalein", "Pacific/Bougainville", "Pacific/Galapagos",
              "Indian/Chagos", "Indian/Christmas", "Indian/Cocos", "Indian/Kerguelen",
              "Atlantic/South_Georgia",
              "Atlantic/St_Helena", "Atlantic/Faeroe", "Atlantic/Madeira", "Atlantic/Azores",
              "Atlantic/Canary", "Australia/Lord_Howe", "Australia/Eucla", "Australia/Lindeman",
              "Australia/Broken_Hill", "America/Punta_Arenas", "America/Noronha", "America/Araguaina",
              "America/Santarem", "America/Eirunepe", "America/Rio_Branco", "America/Porto_Velho",
              "America/Boa_Vista", "America/Cuiaba", "America/Campo_Grande", "America/Maceio",
              "America/Belem", "America/Manaus", "America/Fortaleza", "America/Recife", "America/Bahia",
              # Ordinary words or another entity's name in Arabic or Persian (Monday, the eyes, fish,
              # Algeria, Comoros, Tunisia, Oman, Al Jazeera):
              "Africa/Algiers", "Indian/Comoro", "Africa/Tunis", "Asia/Amman", "Asia/Dushanbe",
              "Africa/El_Aaiun", "Indian/Mahe", "Asia/Dili", "Europe/Samara", "Africa/Ceuta",
              "Pacific/Wallis", "Pacific/Efate", "America/Marigot", "America/Regina", "America/Jujuy",
              "America/Catamarca", "America/Cordoba", "America/Mendoza", "Australia/Darwin",
              # A city that is its own country (the country row names it already):
              "Europe/Vatican",
              "Australia/Perth", "America/Lower_Princes", "America/Miquelon", "America/Kralendijk"}
_PAREN_RE = re.compile(r"\s*[(（][^)）]*[)）]\s*")


def slug(name: str) -> str:
    """ASCII slug of an English name: lower case, accents dropped, runs of other characters -> '-'."""
    s = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    s = s.replace("&", " and ").replace("'", "")
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-")


def clean(name: str) -> str:
    """Drop CLDR's parenthesised qualifiers ("Hong Kong SAR (China)") and normalise '&'."""
    name = _PAREN_RE.sub(" ", name).strip()
    return name.replace(" & ", " and ").replace("‏", "")


def names_of(code: str, loc: Locale) -> list[str]:
    full = loc.territories.get(code)
    if not full:
        return []
    out = [clean(full)]
    if full != out[0]:
        out.append(full.replace("‏", ""))
    return out


def territories() -> list[tuple[str, str, list[str], list[str], list[str], str]]:
    en, ar, fa = Locale("en"), Locale("ar"), Locale("fa")
    rows = []
    for code in sorted(en.territories):
        if code in SKIP_TERRITORIES or (code.isdigit() and code not in KEEP_REGIONS):
            continue
        en_name = KEEP_REGIONS.get(code) or EN_OVERRIDES.get(code) or clean(en.territories[code])
        en_names = [en_name] + [n for n in names_of(code, en) if n != en_name]
        etype = "ORG" if code in ORG_TERRITORIES else "LOC"
        rid = f"{etype.lower()}:{slug(en_name)}"
        kind = "region" if code.isdigit() else ("organisation" if etype == "ORG" else "country")
        attrs = f"kind={kind};cldr={code}"
        ar_names = NAME_OVERRIDES.get((code, "ar")) or names_of(code, ar)
        fa_names = NAME_OVERRIDES.get((code, "fa")) or names_of(code, fa)
        rows.append((rid, etype, en_names, ar_names, fa_names, attrs))
    return rows


def cities(country_ids: dict[str, str]) -> list[tuple[str, str, list[str], list[str], list[str], str]]:
    from babel.dates import get_timezone_location  # noqa: F401  (ensures tz data is present)
    from babel.localedata import load

    en, ar, fa = Locale("en"), Locale("ar"), Locale("fa")
    zone_territories = load("root").get("zone_territories") or {}
    if not zone_territories:
        from babel.core import get_global

        zone_territories = get_global("zone_territories")
    rows = []
    for zone in sorted(ar.time_zones):
        if zone.startswith(SKIP_ZONE_PREFIXES) or zone in SKIP_ZONES or "/" not in zone:
            continue
        ar_city = (ar.time_zones.get(zone) or {}).get("city")
        fa_city = (fa.time_zones.get(zone) or {}).get("city")
        if not ar_city or not fa_city:
            continue
        en_city = (en.time_zones.get(zone) or {}).get("city") or zone.rsplit("/", 1)[1].replace("_", " ")
        en_city = clean(en_city)
        territory = zone_territories.get(zone, "")
        attrs = "kind=city"
        if territory in country_ids:
            attrs += f";country={country_ids[territory]}"
        rows.append((f"loc:{slug(en_city)}", "LOC", [en_city], [clean(ar_city)], [clean(fa_city)], attrs))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    terr = territories()
    country_ids = {attrs.split("cldr=")[1]: rid for rid, _, _, _, _, attrs in terr}
    rows = terr + cities(country_ids)
    seen: set[str] = set()
    lines = ["# generated by tools/build_gazetteer.py from CLDR via Babel; do not edit by hand",
             "# id\ttype\ten\tar\tfa\tattrs"]
    for rid, etype, en_n, ar_n, fa_n, attrs in rows:
        if rid in seen:  # a city sharing a country's name (Singapore, Kuwait): the country row stands
            continue
        seen.add(rid)
        lines.append("\t".join([rid, etype, "|".join(en_n), "|".join(ar_n), "|".join(fa_n), attrs]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines) - 2} entries to {args.out}")


if __name__ == "__main__":
    main()
