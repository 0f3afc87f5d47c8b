from . import test_slugs
