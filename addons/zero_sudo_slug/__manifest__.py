{
    "name": "zero_sudo Slugs",
    "summary": "Unique per-model slugs, resolved from ormcache on every worker, with a route converter",
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
