# Pure helpers (exceptions, grants, push) import no Odoo, so plain pytest runs them
# (tests/test_live_logic.py); config.py reads Odoo's configuration.
