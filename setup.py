"""Packaging for khabar.

The repository root follows the design card (``khabar/``, ``pipelines/``, ``connectors/``,
``schemas/``, ``deploy/``), while every installed import name stays inside the ``khabar``
namespace: ``pipelines/`` installs as ``khabar.pipelines`` and so on.
"""

from pathlib import Path

from setuptools import Extension, setup

PACKAGE_DIRS = {
    "khabar": "khabar",
    "khabar.pipelines": "pipelines",
    "khabar.connectors": "connectors",
    "khabar.schemas": "schemas",
    "khabar.deploy": "deploy",
    "khabar.deploy.local": "deploy/local",
    "khabar.deploy.kibana": "deploy/kibana",
}

setup(
    name="khabar",
    version="0.1.0",
    description="Streaming ingestion and enrichment of Arabic and Persian news: Kafka -> Beam -> Elasticsearch",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        *PACKAGE_DIRS,
        "khabar.data",
        "khabar.models",
    ],
    package_dir=PACKAGE_DIRS,
    package_data={
        "khabar": ["data/*", "data/**/*", "models/*"],
        "khabar.schemas": ["*.json"],
        "khabar.deploy": ["*.yml"],
        "khabar.deploy.local": ["*.xml", "*.properties", "*.yml", "*.txt"],
        "khabar.deploy.kibana": ["*.ndjson", "*.json"],
    },
    include_package_data=False,
    # Compiled CRF decoding; optional: without a C compiler khabar.ner decodes with numpy (slower).
    ext_modules=[Extension("khabar._crf", ["khabar/_crf.c"], optional=True, extra_compile_args=["-O2"])],
    # Versions verified together on Python 3.11 against Kafka 4.1.1 and Elasticsearch 8.19.7.
    install_requires=[
        "apache-beam==2.77.0",
        "kafka-python==3.0.12",
        "crc32c==2.9.post0",
        "elasticsearch==8.19.3",
        "jsonschema==4.26.0",
        "cryptography==50.0.2",  # certificates for the local launcher's --secure mode
        "pyarabic==0.6.15",
        "feedparser==6.0.14",
        "jdatetime==6.1.1",
        "hijridate==2.6.0",
        "trafilatura==2.3.1",
        "lxml_html_clean==0.4.6",  # trafilatura (justext) needs lxml.html.clean, split out of lxml
        "pyahocorasick==2.3.1",
        "rapidfuzz==3.14.6",
        "datasketch==2.0.0",
        "numpy==2.4.6",
        "python-crfsuite==0.9.12",
        "tqdm==4.70.1",
        "PyYAML==6.0.3",
    ],
    extras_require={
        "test": [
            "pytest==9.2.0",
            "pytest-timeout==2.4.0",
            "hypothesis==6.170.15",
            "ruff==0.17.5",
        ],
        "build": ["babel==2.18.0"],
        "train": ["scikit-learn==1.9.1", "scipy==1.17.1"],  # khabar train-ner (word clusters)
        "docs": ["matplotlib==3.10.8"],  # tools/render_dashboards.py
    },
    entry_points={"console_scripts": ["khabar=khabar.cli:main"]},
)
