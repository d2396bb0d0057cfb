"""Pure: a deployment's `scheduling` object (why it waits) in words and figures a person reads."""

REASONS = {
    "dependencies": "it waits for its dependencies to complete",
    "exceeds_capacity": "it asks for more than the whole cluster has: it cannot start unless the cluster grows",
    "resources": "what it asks for is not free, and evicting lower priorities would not free enough",
    "reserved": "what is free is set aside for a deployment that has waited too long",
    "quota_limit": "starting it would take its project above its limit on this cluster",
    "scheduling": "it can start (or preempt its way in): a scheduling pass is due",
}


def amounts(values: dict | None) -> str:
    values = values or {}
    parts = [f"{float(values['cpu']):g} CPU" if float(values.get("cpu", 0)) else "",
             f"{float(values['ram']):g} GB RAM" if float(values.get("ram", 0)) else "",
             f"{values['gpu']} GPU" if values.get("gpu") else ""]
    return ", ".join(part for part in parts if part) or "nothing"


def explain(deployment: dict) -> list[str]:
    """Lines that say where the deployment is and, if it waits, why, how far back and what would change it."""
    pk, status = deployment["id"], deployment["status"]
    head = f"#{pk} '{deployment['name']}' is {status}: {deployment.get('status_reason') or ''}".rstrip(": ")
    scheduling = deployment.get("scheduling")
    if status != "pending" or not scheduling:
        return [head]
    lines = [head, f"Why: {REASONS.get(scheduling['reason'], scheduling['reason'])}."]
    lines.append(f"Queue position: {scheduling['queue_position']} among its cluster's pending deployments.")
    if scheduling.get("waiting_for"):
        lines.append("Waiting for: " + ", ".join(f"#{d}" for d in scheduling["waiting_for"]) + ".")
    lines.append(f"Short of: {amounts(scheduling['shortfall'])} beyond what is free now.")
    lines.append(f"Preemptible (lower priority, running): {amounts(scheduling['preemptible'])}.")
    if scheduling.get("reserved_for"):
        lines.append(f"Reservation: what is free is held for #{scheduling['reserved_for']}.")
    project = scheduling.get("project")
    if project:
        limit = f"limit {amounts(project['limit'])}" if project.get("limit") else "no limit"
        borrowing = " Starting it would borrow beyond the guarantee." if project.get("borrowing") else ""
        lines.append(f"Project #{project['id']}: uses {amounts(project['usage'])}; guaranteed "
                     f"{amounts(project['guaranteed'])}; {limit}.{borrowing}")
    return lines
