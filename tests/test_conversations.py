"""Persona conversations between three real villages (loopback libp2p, SQLite stores): a
scripted conversation in which one village is killed mid-way and restarted; it catches up to
the same transcript and the same final checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import trio

from core.commands import AddPersona
from core.node import Node, NodeConfig
from core.personas import talk
from tests.nodes import run_trio_test, run_villages, stop, trio_villages, trio_wait_for


async def _persona(node: Node, name: str, **fields: Any) -> str:
    p = await node.execute(AddPersona(name=name, fields={"status": "running",
                                                         "availability": "open", **fields}))
    return p.id


def _same(nodes: list[Node], cid: str) -> bool:
    logs = [n.conversations.conversations.get(cid) for n in nodes]
    if any(c is None for c in logs):
        return False
    finals = {(c.log.final.checkpoint.count, c.log.final.checkpoint.root) if c.log.final
              else None for c in logs}
    return len({tuple(c.log.order()) for c in logs}) == 1 and len(finals) == 1 and \
        None not in finals and next(iter(finals))[0] == len(logs[0].log.entries)


def _state(nodes: list[Node], cid: str) -> str:
    """What each village holds of the conversation: entries per author, final count."""
    out = []
    for n in nodes:
        c = n.conversations.conversations.get(cid)
        if c is None:
            out.append(f"{n.averaging.me[-6:]}: none")
            continue
        per = sorted(c.said(p.peer) for p in c.participants)
        final = c.log.final.checkpoint.count if c.log.final else 0
        out.append(f"{n.averaging.me[-6:]}: {len(c.log.entries)} entries {per}, final "
                   f"{final}, over {c.over()}, forked {sorted(c.log.forked_at)}")
    return "; ".join(out)


@pytest.mark.timeout(300)
def test_three_villages_talk_one_is_killed_and_catches_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(talk, "TURN_EVERY", 0.3)
    monkeypatch.setattr(talk, "SYNC_EVERY", 0.5)

    async def main() -> None:
        async with trio_villages(tmp_path, 3) as nodes, trio.open_nursery() as extra:
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 2 for n in nodes), 60,
                                "routing tables")
            ids = [await _persona(n, f"P{i}") for i, n in enumerate(nodes)]
            closed = await _persona(nodes[1], "Hermit", availability="closed")
            with pytest.raises(Exception, match="closed to conversations"):
                await nodes[0].conversations.start(ids[0], [(nodes[1].averaging.me, closed)])
            cid = await nodes[0].conversations.start(
                ids[0], [(nodes[1].averaging.me, ids[1]), (nodes[2].averaging.me, ids[2])],
                turns=8)
            conv = [n.conversations.conversations for n in nodes]
            await trio_wait_for(lambda: all(cid in c and len(c[cid].log.entries) >= 6
                                            for c in conv), 60, "a few messages everywhere")
            victim = nodes[2]
            vc = victim.conversations.conversations[cid]
            before = len(vc.log.entries)
            said_before = sum(1 for e in vc.log.entries.values() if e.author == vc.persona
                              or e.author == victim.averaging.me)
            stop(victim)  # killed mid-conversation
            # the others go on without it until neither can say more (all said, or the last
            # word is its own): back, it answers, the talk ends with turns left (nobody
            # answers the last word) and that tail is checkpointed too
            done = [n.conversations.conversations[cid] for n in nodes[:2]]
            try:
                await trio_wait_for(lambda: done[0].log.order() == done[1].log.order() and not
                                    any(c.may_speak(n.averaging.me) for n, c in
                                        zip(nodes[:2], done, strict=True)),
                                    60, "the other two saying all they can")
            except AssertionError as e:
                raise AssertionError(f"{e}: {_state(nodes[:2], cid)}") from None
            assert len(nodes[0].conversations.conversations[cid].log.entries) > before
            # restarted: same profile (key, data), bootstrapped off the first village
            env = {"GROVE_HOME": str(tmp_path), "GROVE_KEY_STORE": "file"}
            assert nodes[0].host is not None
            again = Node(NodeConfig.load("v2", env=env, overrides={
                "listen_host": "127.0.0.1", "listen_port": 0, "use_default_bootstrap": False,
                "bootstrap": (nodes[0].host.listen_addrs()[0],)}, seed=22))
            scope = trio.CancelScope()

            async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                          ) -> None:
                with scope:
                    _send, receive = trio.open_memory_channel[Any](10)
                    await again.run(lambda s: None, lambda e: None, receive,
                                    task_status=task_status)

            await extra.start(run)
            await trio_wait_for(lambda: cid in again.conversations.conversations, 10,
                                "the conversation reloaded from its store")
            assert len(again.conversations.conversations[cid].log.entries) >= before
            live = [nodes[0], nodes[1], again]
            while True:  # until the talk is over and everyone holds the same final log
                try:
                    await trio_wait_for(lambda: _same(live, cid), 120,
                                        "the same transcript and final checkpoint everywhere")
                except AssertionError as e:
                    raise AssertionError(f"{e}: {_state(live, cid)}") from None
                n = len(nodes[0].conversations.conversations[cid].log.entries)
                await trio.sleep(3.0)
                if _same(live, cid) and len(
                        nodes[0].conversations.conversations[cid].log.entries) == n:
                    break
            c0 = nodes[0].conversations.conversations[cid]
            per = {}
            for e in c0.log.entries.values():
                per[e.author] = per.get(e.author, 0) + 1
            assert per[nodes[0].averaging.me] == 8 and per[nodes[1].averaging.me] == 8
            assert per[again.averaging.me] > said_before  # it spoke again after the restart
            views = {v.id: v for v in again.snapshot().conversations}
            assert views[cid].last_checkpoint == len(c0.log.entries)
            assert views[cid].finished  # with turns left: nobody is left to answer it
            assert len(views[cid].partners) == 2 and views[cid].transcript
            scope.cancel()

    run_villages(main, timeout=240)


@pytest.mark.timeout(120)
def test_strangers_cannot_invite_an_invitation_only_persona_nor_flood_invitations(
        tmp_path: Path) -> None:
    """A new persona is invitation-only: a village may invite it only after this village
    invited that village to a conversation. Past 5 invitations (then one a minute) a
    village's invitations are refused, whatever the persona."""
    from core.personas.serving import INVITES_BURST

    async def main(checks_done: Any) -> None:
        async with trio_villages(tmp_path, 2) as (a, b):
            await trio_wait_for(lambda: all(len(n.dht.table or ()) >= 1 for n in (a, b)), 60,
                                "routing tables")
            shy = (await b.execute(AddPersona(name="Shy", fields={"status": "running"})))
            assert shy.availability == "invitation"  # the default
            guest = await _persona(a, "Guest", capacity=16)
            host_b = await _persona(b, "Host")
            with pytest.raises(Exception, match="invitation only"):
                await a.conversations.start(guest, [(b.averaging.me, shy.id)], turns=1)
            await b.conversations.start(host_b, [(a.averaging.me, guest)], turns=1)
            await a.conversations.start(guest, [(b.averaging.me, shy.id)], turns=1)  # now
            # b has sent a 1 invitation, a 2 (the refused one counted): flood a from b
            opened = await _persona(a, "Open", capacity=16)
            sent = 1
            with pytest.raises(Exception, match="too many invitations"):
                while True:
                    await b.conversations.start(host_b, [(a.averaging.me, opened)], turns=1)
                    sent += 1
            assert sent == INVITES_BURST
            checks_done()

    run_trio_test(main, timeout=100)


@pytest.mark.timeout(120)
def test_a_stopped_persona_says_nothing_more_even_after_a_restart(tmp_path: Path) -> None:
    """Stopping our persona in a conversation: it says no more messages, the view says so,
    and the store keeps it stopped (a reloaded conversation does not start talking again)."""
    from core.commands import StopConversation
    from core.personas.store import ConversationStore

    async def main() -> None:
        async with trio_villages(tmp_path, 2) as nodes:
            a, b = nodes
            ada = await _persona(a, "Ada")
            bo = await _persona(b, "Bo", availability="open")
            await trio_wait_for(lambda: bool(a.dht.known_villages(time.time())), 30,
                                "b's record")
            cid = await a.conversations.start(ada, [(b.averaging.me, bo)], turns=30)
            mine = a.conversations._my_messages
            c = a.conversations.conversations[cid]
            await trio_wait_for(lambda: mine(c) >= 2, 30, "Ada to speak twice")
            await a.execute(StopConversation(cid))
            said = mine(c)
            await trio.sleep(4 * talk.TURN_EVERY * 1.5)  # several turns' time
            assert mine(c) == said  # nothing more from Ada
            view = next(v for v in a.snapshot().conversations if v.id == cid)
            assert view.stopped
            store = ConversationStore(a.config.paths.data_dir / talk.DB_FILE)
            try:
                again = next(x for x in store.load() if x.id == cid)
            finally:
                store.close()
            assert again.stopped and again.turns == said

    run_villages(main, timeout=110)
