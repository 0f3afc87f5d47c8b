{
    "name": "zero_sudo test models",
    "summary": "Models and routes used only by the suite's own tests and benchmarks: never install in production",
    "version": "18.0.1.0.0",
    "category": "Hidden/Tests",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["zero_sudo_slug", "zero_sudo_gdpr"],
    "data": ["security/ir.model.access.csv"],
    "installable": True,
    "application": False,
}
