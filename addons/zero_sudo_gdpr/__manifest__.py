{
    "name": "zero_sudo GDPR Eraser",
    "summary": "Erase a person's data across millions of rows: rule by rule, chunk by chunk, commit per chunk",
    "version": "18.0.1.2.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["zero_sudo"],
    "external_dependencies": {"python": ["zero-sudo"]},
    "data": [
        "security/security.xml",
        "security/ir.model.access.csv",
        "views/gdpr_views.xml",
        "views/partner_views.xml",
    ],
    "installable": True,
    "application": False,
}
