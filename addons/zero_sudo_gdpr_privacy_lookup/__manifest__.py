{
    "name": "zero_sudo GDPR Eraser: privacy log",
    "summary": "Each erasure is also logged in Odoo's privacy log (privacy_lookup), as its own lookups are",
    "version": "18.0.1.0.0",
    "category": "Hidden",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["zero_sudo_gdpr", "privacy_lookup"],
    "data": ["views/gdpr_views.xml"],
    "auto_install": True,
    "installable": True,
    "application": False,
}
