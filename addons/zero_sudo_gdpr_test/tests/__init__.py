from . import test_discovered_rules
