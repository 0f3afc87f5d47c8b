{
    "name": "zero_sudo Core",
    "summary": "Deterministic locks, ID-only change events, coherent caches on every worker, "
    "Redis sessions, bounded offloading of long requests",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["base", "web"],
    "external_dependencies": {"python": ["zero-sudo", "redis", "pika"]},
    "data": [
        "security/security.xml",
        "security/ir.model.access.csv",
        "views/task_views.xml",
        "views/res_users_views.xml",
        "views/health_views.xml",
        "data/ir_cron.xml",
    ],
    "pre_init_hook": "pre_init_hook",
    "post_load": "post_load",
    "installable": True,
    "application": False,
}
