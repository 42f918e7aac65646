"""A training project's progress among its villages, for `TrainingService`: this village's
signed progress record (held by itself, so a step shows the moment it is taken, and put in the
DHT every PROGRESS_EVERY s), the other participants' records read back into the project's
state, and who takes part (the project's directory key, announced and read)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from core.dht import records as rec
from core.training.collab import Progress

if TYPE_CHECKING:
    from core.ports import ServiceContext
    from core.training.service import ProjectState

log = logging.getLogger(__name__)

PROGRESS_EVERY = 1.0        # s between progress records (and reads of the peers')
PROGRESS_TTL = 30.0
PARTICIPANTS_EVERY = 5.0    # s between reads of who takes part
ANNOUNCE_EVERY = 120.0


class ProgressBoard:
    """Progress records and participants of the projects, over `directory` (the DHT)."""

    def __init__(self, ctx: ServiceContext, directory: Any) -> None:
        self.ctx, self.directory = ctx, directory

    def publish(self, st: ProjectState) -> rec.ValidRecord:
        """Sign our progress now and hold it ourselves (asked first by whoever reads it), so a
        step shows the moment it is taken."""
        me = self.ctx.peer_id
        now = self.ctx.clock.wall()
        st.seq += 1
        record = rec.ProgressRecord(
            v=rec.VERSION, peer_id=me, project=st.spec.name, epoch=st.epoch,
            samples=st.samples_step, samples_per_second=round(st.samples_per_second, 1),
            state_hash=st.hash, seq=int(self.ctx.clock.wall() * 1_000_000), issued_at=now,
            expires_at=now + PROGRESS_TTL)
        value = rec.sign_progress(record, self.ctx.sign)
        valid = rec.validate(rec.progress_key(st.spec.name, me), value, now)
        self.directory.hold(valid)  # our own: no put budget to spend
        return valid

    async def progress_loop(self, st: ProjectState) -> None:
        me = self.ctx.peer_id
        while True:
            valid = self.publish(st)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._put_quietly, valid)
                for pid in st.participants:
                    if pid != me:
                        nursery.start_soon(self._read_progress, st, pid)
            await trio.sleep(PROGRESS_EVERY)

    async def _put_quietly(self, valid: rec.ValidRecord) -> None:
        try:
            await self.directory.put_record(valid)
        except Exception as e:  # no peers yet: the next second tries again
            log.debug("progress not published: %s", e)

    async def _read_progress(self, st: ProjectState, pid: str) -> None:
        with trio.move_on_after(PROGRESS_EVERY * 2):
            try:
                got = await self.directory.get_progress(st.spec.name, pid)
            except Exception as e:
                log.debug("progress of %s not read: %s", pid, e)
                return
            if got is None:
                st.peers.pop(pid, None)
                return
            r = got.record
            st.peers[pid] = Progress(pid, r.epoch, r.samples, r.samples_per_second,
                                     r.state_hash)

    async def participants_loop(self, st: ProjectState) -> None:
        dht = self.directory
        key = b"/grove/dir/train/" + st.spec.name.encode()
        announced = -1e9
        while True:
            if trio.current_time() - announced > ANNOUNCE_EVERY:
                try:
                    await dht.announce(key)
                    announced = trio.current_time()
                except Exception as e:
                    log.debug("training %s: announce failed: %s", st.spec.name, e)
            try:
                listed = await dht.find_providers(key)
                st.participants = sorted({p.peer_id for p in listed} | {self.ctx.peer_id})
            except Exception as e:
                log.debug("training %s: participants not read: %s", st.spec.name, e)
            for pid in [p for p in st.peers if p not in st.participants]:
                del st.peers[pid]
            await trio.sleep(PARTICIPANTS_EVERY)
