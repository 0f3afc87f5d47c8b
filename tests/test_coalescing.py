"""zero_sudo_daemons.coalescing: bursts merged per (model, op), overflow bounded by a flush."""

from zero_sudo_bus.protocol import ChangeBatch, Op
from zero_sudo_daemons.coalescing import Coalescer


def test_coalescer_merges_a_burst_per_model_and_op_without_duplicates():
    coalescer = Coalescer(max_pending_ids=100)
    coalescer.add(ChangeBatch(1, Op.WRITE, (1, 2)), now=10.0)
    coalescer.add(ChangeBatch(1, Op.WRITE, (2, 3)), now=10.1)
    coalescer.add(ChangeBatch(2, Op.WRITE, (1,)), now=10.2)
    coalescer.add(ChangeBatch(1, Op.UNLINK, (9,)), now=10.3)
    drained = coalescer.drain()
    assert not drained.flush_required
    assert drained.changes == ((1, Op.WRITE, (1, 2, 3)), (2, Op.WRITE, (1,)), (1, Op.UNLINK, (9,)))
    assert drained.oldest_at == 10.0
    assert not coalescer.drain()


def test_coalescer_overflow_becomes_one_flush_and_stays_bounded():
    coalescer = Coalescer(max_pending_ids=5)
    assert not coalescer.add(ChangeBatch(1, Op.WRITE, (1, 2, 3)), now=0)
    assert coalescer.add(ChangeBatch(1, Op.WRITE, (4, 5, 6)), now=0)
    assert not coalescer.add(ChangeBatch(1, Op.WRITE, tuple(range(100, 200))), now=0)
    assert coalescer.pending_ids == 0
    drained = coalescer.drain()
    assert drained.flush_required and drained.changes == ()
    coalescer.add(ChangeBatch(1, Op.WRITE, (7,)), now=1)
    assert coalescer.drain().changes == ((1, Op.WRITE, (7,)),)
