from . import test_erasure
