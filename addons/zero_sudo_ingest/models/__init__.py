from . import ingest_landing, ingest_stream
