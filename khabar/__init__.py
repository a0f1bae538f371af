"""khabar: streaming ingestion and enrichment of Arabic and Persian news.

The ``khabar`` package itself is the pure text-analysis core (no Beam, no I/O); the Beam
pipelines, connectors, schemas and deployment helpers install as ``khabar.pipelines``,
``khabar.connectors``, ``khabar.schemas`` and ``khabar.deploy``.
"""

__version__ = "0.1.0"
