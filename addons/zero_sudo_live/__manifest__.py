{
    "name": "zero_sudo Live",
    "summary": "Lists, kanbans and forms that follow other users' changes live, through the zero_sudo gateway; "
    "per-model publishing chosen by an admin, gateway tokens, pushes to users",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["zero_sudo", "web"],
    "external_dependencies": {"python": ["zero-sudo", "redis"]},
    "data": [
        "data/ir_config_parameter.xml",
        "views/ir_model_views.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "zero_sudo_live/static/src/**/*",
        ],
    },
    "installable": True,
    "application": False,
}
