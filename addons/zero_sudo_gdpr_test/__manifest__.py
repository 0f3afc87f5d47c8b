{
    "name": "zero_sudo GDPR tests with mail and contacts",
    "summary": "Installs Contacts (hence mail and privacy_lookup) next to the GDPR eraser, for the suite's own tests: never install in production",
    "version": "18.0.1.0.0",
    "category": "Hidden/Tests",
    "license": "LGPL-3",
    "author": "zero_sudo",
    "website": "https://github.com/zero-sudo/zero_sudo",
    "depends": ["zero_sudo_gdpr", "contacts", "zero_sudo_gdpr_privacy_lookup"],
    "data": [],
    "installable": True,
    "application": False,
}
