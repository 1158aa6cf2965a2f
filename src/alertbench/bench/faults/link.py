"""What a degraded link needs here, checked before a run: tc, nft, iptables."""

from __future__ import annotations

from alertbench.bench.faults import iptables, nft, tc


def link_refusal(
    rate_mbit: float, loss_pct: float, delay_ms: float = 0.0, jitter_ms: float = 0.0
) -> str | None:
    """Why this machine cannot degrade a node's link as asked, or None."""
    if rate_mbit <= 0 and loss_pct <= 0 and delay_ms <= 0:
        return "network-slow needs rate_mbit, loss_pct or delay_ms above 0"
    if not 0 <= loss_pct < 100:
        return f"loss_pct must be at least 0 and below 100, not {loss_pct:g}"
    if jitter_ms < 0 or jitter_ms > delay_ms:
        return (
            f"jitter_ms ({jitter_ms:g}) must lie between 0 and delay_ms ({delay_ms:g}): a "
            "packet cannot leave before it came"
        )
    needs = [
        (rate_mbit > 0, tc.why_not),
        (loss_pct > 0, nft.why_not),
        (delay_ms > 0, iptables.why_not),
    ]
    for asked, why_not in needs:
        why = why_not() if asked else None
        if why:
            return why
    return None
