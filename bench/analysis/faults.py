"""What a fault drill did to a cell, read from its events: survived or not, failed and retried requests,
recovery time, and what the reliability options did (retries, fallbacks, hung workers found)."""

from __future__ import annotations

from typing import Any

from ttsload.strategies.events import Event

RECOVERED = (Event.WORKER_READY, Event.LOAD_RECOVERED)  # the pool is whole again / the load came back


def facts(events: list[dict[str, Any]], status: str) -> dict[str, Any]:
    """Per cell: the drill's outcome (empty values when the cell ran no drill)."""
    def named(name: str) -> list[dict[str, Any]]:
        return [e for e in events if e["event"] == name]

    fault = next(iter(named(Event.FAULT)), None)
    failed, retried = named(Event.REQUEST_FAILED), named(Event.REQUEST_RETRIED)
    out: dict[str, Any] = {
        "load_retries": len(named(Event.LOAD_RETRY)) or None,
        "load_fallbacks": len(named(Event.LOAD_FALLBACK)) or None,
        "fallback_to": next((e.get("to") for e in named(Event.LOAD_FALLBACK)), None),
        "hung_workers": len(named(Event.WORKER_HUNG)) or None,
        "oom_kills": next((e.get("oom_kills") for e in named(Event.MEMORY_LIMIT)), None),
        "memory_limit_mb": next((e.get("memory_limit_mb") for e in named(Event.MEMORY_LIMIT)), None),
        "cgroup_peak_mb": next((e.get("cgroup_peak_mb") for e in named(Event.MEMORY_LIMIT)), None),
    }
    if fault is None:
        return out
    after = [e for e in events if e["t"] >= fault["t"]]
    back = next((e for e in after if e["event"] in RECOVERED), None)
    if fault.get("fault") == "oom":  # the fault is the limit itself: recovered when the fallback worker is ready
        fell = next((e for e in after if e["event"] == Event.LOAD_FALLBACK), None)
        back = next((e for e in after if e["event"] == Event.WORKER_READY and fell and e["t"] >= fell["t"]), None)
    hung = next((e for e in after if e["event"] == Event.WORKER_HUNG), None)
    changed = next((e for e in after if e["event"] == Event.CHECKPOINT_CHANGED), None)
    out.update({
        "fault": fault.get("fault"),
        "survived": "yes" if status == "ok" and not failed else "no",
        "requests_failed": len(failed),
        "requests_retried": len(retried),
        "recovery_s": back["t"] - fault["t"] if back else None,
        "hang_detected_s": hung["t"] - fault["t"] if hung else None,
        "fault_note": _note(fault, failed, changed, out),
    })
    return out


def _note(fault: dict[str, Any], failed: list[dict[str, Any]], changed: dict[str, Any] | None,
          out: dict[str, Any]) -> str:
    """What the strategy said about the fault, in one line."""
    if changed:
        return f"kept serving {changed.get('serving', 'its loaded copy')}; checkpoint on disk " + (
            "replaced" if changed.get("exists") else "gone")
    if failed:  # the innermost reason, without the relays' prefixes ("worker N failed request i: ...")
        reason = str(failed[0].get("error", "")).rsplit("Error: ", 1)[-1]
        return "failed: " + " ".join(reason.split())[:160]
    if out.get("load_fallbacks"):
        return f"fell back to {out.get('fallback_to')}"
    if out.get("load_retries"):
        return f"every load recovered ({out['load_retries']} retries in all)"
    if out.get("hung_workers"):
        return "hung worker killed and replaced"
    return ""
