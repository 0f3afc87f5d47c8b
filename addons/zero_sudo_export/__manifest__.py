{
    "name": "zero_sudo Streaming Export",
    "summary": "Export any model as JSON or NDJSON with flat memory: keyset chunks, generators, streamed",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["zero_sudo"],
    "external_dependencies": {"python": ["zero-sudo"]},
    "data": [],
    "installable": True,
    "application": False,
}
