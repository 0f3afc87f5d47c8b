"""addons/zero_sudo/tools/stale_guard.py without Odoo: values read before an invalidation are dropped."""

from conftest import addon_tools

addon_tools("zero_sudo")  # before importing from its package, zero_sudo_tools
from zero_sudo_tools.stale_guard import StaleGuard  # noqa: E402


def test_stale_guard_drops_a_value_when_the_older_transaction_ends():
    guard, dropped = StaleGuard(), []
    guard.begin(1)  # a request's transaction, before the commit
    guard.invalidate(["res.partner"])  # the commit's invalidation arrives
    assert guard.taint("res.partner", lambda: dropped.append("old")) is True
    assert guard.taint("res.users", lambda: dropped.append("other")) is False
    assert dropped == []
    guard.end(1)
    assert dropped == ["old"]
    guard.begin(2)  # began after the invalidation: its values are clean
    assert guard.taint("res.partner", lambda: dropped.append("new")) is False


def test_stale_guard_flush_taints_every_model_and_commit_ends_a_transaction():
    guard, dropped = StaleGuard(), []
    guard.begin(1)
    guard.invalidate_all()
    assert guard.taint("any.model", lambda: dropped.append(1))
    guard.begin(1)  # commit: the old transaction ended, a new one began
    assert dropped == [1]
    assert not guard.taint("any.model", lambda: dropped.append(2))
