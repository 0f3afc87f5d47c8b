# pytest-odoo imports this package while collecting, before Odoo loads its server-wide modules;
# Odoo's loader then finds odoo.addons.zero_sudo already imported and skips its post_load hook.
# Run the hook here, at the same point of start-up (before any registry), as a server would.
# test_servers.py shows that real Odoo server processes install the patches by themselves.
from ..patches import install

install()
