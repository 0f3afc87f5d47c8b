from . import ingest_stream, ingest_landing
