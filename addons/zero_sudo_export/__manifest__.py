{
    "name": "zero_sudo Streaming Export",
    "summary": "Export any model as JSON or NDJSON with flat memory: keyset chunks, generators, streamed; "
    "the export dialog streams CSV, XLSX and JSON, large exports in the background",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["zero_sudo", "web", "bus"],
    "external_dependencies": {"python": ["zero-sudo"]},
    "data": [],
    "assets": {
        "web.assets_backend": [
            "zero_sudo_export/static/src/**/*",
        ],
    },
    "installable": True,
    "application": False,
}
