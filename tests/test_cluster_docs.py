"""docs/deployment.md shows the HAProxy configuration the cluster tests run, not a copy that
could drift from it."""

from __future__ import annotations

import re
from pathlib import Path

from voicebot.telephony.testing.cluster import haproxy_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"


def test_the_documented_haproxy_config_is_the_tested_one() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- haproxy-config -->\n```haproxy\n(.*?)```", text, re.S)
    assert block is not None, "docs/deployment.md lacks the haproxy-config block"
    documented = block.group(1)
    bind = re.search(r"^    bind (.+)$", documented, re.M)
    servers = re.findall(r"^    server (\S+) (\S+) agent-port (\d+)$", documented, re.M)
    assert bind is not None and servers
    triples = [(name, address, int(agent)) for name, address, agent in servers]
    assert documented == haproxy_config(bind.group(1), triples)


def test_the_systemd_unit_drains_within_its_stop_timeout() -> None:
    text = DOC.read_text(encoding="utf-8")
    drain = re.search(r"--drain-timeout (\d+)", text)
    stop = re.search(r"^TimeoutStopSec=(\d+)$", text, re.M)
    assert drain is not None and stop is not None
    assert int(stop.group(1)) > int(drain.group(1))  # systemd must not SIGKILL a drain
