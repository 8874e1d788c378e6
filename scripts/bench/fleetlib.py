"""The pure logic of scripts/bench/fleet (see its usage text): a fleet of N hosts in the shape of
molecule/fleet/inventory, the per-host numbers of a PLAY RECAP, and the table of every size.

  fleetlib.py inventory --base molecule/fleet/inventory/hosts.yml --hosts N --dir DIR [--prefix P]
                        [--network NAME] [--forks-max 50]
      writes DIR/inventory/hosts.yml (N hosts) and DIR/ansible.cfg, prints the hosts' count,
      services and edges as JSON.
  fleetlib.py report --out DIR
      reads DIR/hosts-*/control-plane.json and size.json, writes DIR/fleet.json and
      DIR/fleet.md, prints fleet.md.

Run with .venv's Python (PyYAML comes with Ansible); test_fleetlib.py tests it without any
container."""

import argparse
import copy
import datetime
import glob
import json
import os
import platform
import re
import sys

import benchlib

# Every container of the fleet benchmark is named with this prefix, apart from the Molecule
# scenarios' own (f-*, mtls-bench-*, ...).
PREFIX = "mtls-fb"
NETWORK = "mtls-fb"
# What Molecule's ansible.cfg says (molecule.constants.DEFAULT_ANSIBLE_CFG_OPTIONS), and the
# pipelining of .config/molecule/config.yml; forks as many as the hosts, up to FORKS_MAX.
FORKS_MAX = 50


def replica_names(replica):
    """The names of replica `replica` (1, 2, ...) of the base fleet: hosts, groups, services and
    local groups each with the replica's number, so that replicas never share a name."""
    return {
        "host": lambda host: "%s-%d-%s" % (PREFIX, replica, host),
        "group": lambda group: "%s_%d" % (group, replica),
        "service": lambda service: "%s-%d" % (service, replica),
        "local_group": lambda name: "%s-%d" % (name, replica),
    }


def base_hosts(children):
    """The hosts of the base inventory's groups, in the order they first appear."""
    hosts = []
    for group in (children or {}).values():
        for host in ((group or {}).get("hosts") or {}):
            if host not in hosts:
                hosts.append(host)
    return hosts


def scale(base, hosts, pki_dir, network=NETWORK):
    """The inventory of a fleet of `hosts` hosts: the base fleet (molecule/fleet/inventory, as
    parsed YAML) repeated hosts / (its hosts) times, each replica its own services, groups and
    hosts calling only within itself, so that every host carries the load of its counterpart in
    the base fleet. The mesh declaration stays one (mtls_mesh of all). Raises ValueError when
    `hosts` is not a multiple of the base's hosts."""
    top = base["all"]
    children = top.get("children") or {}
    names = base_hosts(children)
    if not names:
        raise ValueError("the base inventory has no hosts in its groups")
    if hosts < len(names) or hosts % len(names):
        raise ValueError("--hosts takes multiples of the base fleet's %d hosts, not %d" % (len(names), hosts))
    variables = copy.deepcopy(top.get("vars") or {})
    mesh = variables.get("mtls_mesh") or {}
    services = mesh.get("services") or []
    new_services, new_children = [], {}
    for replica in range(1, hosts // len(names) + 1):
        rename = replica_names(replica)
        for service in services:
            entry = copy.deepcopy(service)
            entry["name"] = rename["service"](service["name"])
            entry["group"] = rename["group"](service["group"])
            if service.get("local_group"):
                entry["local_group"] = rename["local_group"](service["local_group"])
            entry["calls"] = [dict(call, service=rename["service"](call["service"])) for call in service.get("calls") or []]
            if not entry["calls"]:
                entry.pop("calls")
            new_services.append(entry)
        for group, members in children.items():
            new_children[rename["group"](group)] = {
                "hosts": {rename["host"](host): copy.deepcopy(value) for host, value in ((members or {}).get("hosts") or {}).items()}}
    variables["mtls_mesh"] = dict(copy.deepcopy(mesh), services=new_services)
    variables["mtls_test_network"] = network
    variables["mtls_pki_dir"] = pki_dir
    return {"all": {"vars": variables, "children": new_children}}


def shape(inventory):
    """hosts, services and edges of an inventory made by scale()."""
    top = inventory["all"]
    services = top["vars"]["mtls_mesh"]["services"]
    return {"hosts": len(base_hosts(top["children"])), "services": len(services),
            "edges": sum(len(service.get("calls") or []) for service in services)}


def ansible_cfg(hosts, forks_max=FORKS_MAX):
    """ansible.cfg for the fleet's runs: Molecule's defaults, pipelining as
    .config/molecule/config.yml sets it, forks as many as the hosts up to forks_max."""
    return "\n".join([
        "# Written by scripts/bench/fleet: Molecule's ansible.cfg defaults and the pipelining of",
        "# .config/molecule/config.yml, forks as many as the hosts (up to %d)." % forks_max,
        "[defaults]",
        "display_failed_stderr = True",
        "forks = %d" % min(hosts, forks_max),
        "retry_files_enabled = False",
        "host_key_checking = False",
        "nocows = 1",
        "interpreter_python = auto_silent",
        "",
        "[connection]",
        "pipelining = True",
        "",
    ])


def parse_recap_hosts(text):
    """Each host's counts of a PLAY RECAP ('host : ok=3 changed=1 unreachable=0 failed=0
    skipped=2 rescued=0 ignored=0'), the last recap when there are several."""
    hosts = {}
    for line in text.splitlines():
        match = re.match(r"^(\S+)\s+:\s+(ok=\d+.*)$", line.strip())
        if match:
            hosts[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return hosts


def host_tasks(recap_hosts, hosts=None):
    """The mean of ok + changed + skipped + failed over the hosts (those of `hosts` only, when
    given): the task results Ansible handled per host. None without any."""
    counts = [sum(values.get(key, 0) for key in ("ok", "changed", "skipped", "failed"))
              for host, values in recap_hosts.items() if hosts is None or host in hosts]
    return sum(counts) / float(len(counts)) if counts else None


def summarize_size(size, steps, logs):
    """One row of the table: `size` is size.json (hosts, services, edges, forks, host names),
    `steps` control-plane.json, `logs` {log file name: its text}."""
    by_label = {step["label"]: step for step in steps}
    row = dict(size)
    row.pop("host_names", None)
    names = set(size.get("host_names") or [])

    def measured(label):
        step = by_label.get(label)
        return step if step and step.get("measured", True) else None

    for key, label in (("create", "containers (create and prepare)"), ("first_run", "first run"),
                       ("rerun", "idempotent rerun"), ("ping", "ping"), ("verify", "verify")):
        step = measured(label)
        row[key + "_s"] = step["wall_s"] if step else None
        if key in ("first_run", "rerun") and step:
            recap = parse_recap_hosts(logs.get(step.get("log"), ""))
            row[key + "_playbook_s"] = step.get("playbook_s")
            row[key + "_changed"] = step.get("changed")
            row[key + "_host_tasks_per_host"] = host_tasks(recap, names or None)
            row[key + "_recap_hosts"] = len([host for host in recap if not names or host in names])
    row["rerun_per_ping"] = benchlib.ratio(row.get("rerun_s"), row.get("ping_s"))
    row["rerun_s_per_host"] = benchlib.ratio(row.get("rerun_s"), row.get("hosts"))
    return row


def render(report):
    rows = report["sizes"]
    out = ["# mtls.nginx control plane at fleet size, %s" % report["started_utc"], ""]
    out.append("`%s` on %s. Each size is a fleet of that many containers in the shape of "
               "molecule/fleet/inventory (its %s, repeated with the names numbered, each copy "
               "calling only within itself, so every host carries the same tiers as in the "
               "10-host scenario), started anew; mtls.nginx.site's first run, an idempotent "
               "rerun, then `ansible all -m ansible.builtin.ping` on the same hosts, Ansible's "
               "own floor. ansible.cfg: pipelining on, forks = hosts (up to %d), as Molecule's. "
               "Host-tasks per host: ok + changed + skipped + failed of the PLAY RECAP, averaged "
               "over the hosts."
               % (" ".join(["scripts/bench/fleet"] + report.get("argv", [])), report["machine"].get("CPU", "?"),
                  report.get("base", "10 hosts"), FORKS_MAX))
    out.append("")
    table = []
    for row in rows:
        table.append([row["hosts"], row.get("services", "?"), row.get("edges", "?"), row.get("forks", "?"),
                      benchlib.fmt(row.get("first_run_s"), 1), benchlib.fmt(row.get("rerun_s"), 1),
                      benchlib.fmt(row.get("rerun_changed")),
                      "%s / %s" % (benchlib.fmt(row.get("first_run_host_tasks_per_host"), 1),
                                   benchlib.fmt(row.get("rerun_host_tasks_per_host"), 1)),
                      benchlib.fmt(row.get("ping_s"), 1), benchlib.fmt(row.get("rerun_per_ping"), 1, "×"),
                      benchlib.fmt(row.get("rerun_s_per_host"), 2),
                      row.get("status", "ok")])
    out.append(benchlib.markdown_table(
        ["hosts", "services", "edges", "forks", "first run s", "rerun s", "changed on rerun",
         "host-tasks / host (first / rerun)", "ping s", "rerun / ping", "rerun s / host", "status"],
        table, "rrrrrrrrrrrl"))
    out.append("")
    if any(row.get("verify_s") is not None for row in rows):
        out.append("mtls.nginx.verify: " + "; ".join(
            "%d hosts %s s" % (row["hosts"], benchlib.fmt(row.get("verify_s"), 1))
            for row in rows if row.get("verify_s") is not None))
        out.append("")
    out.append(benchlib.markdown_table(["what", "value"], [[key, value] for key, value in report["machine"].items()], "ll"))
    out.append("")
    return "\n".join(out)


def machine():
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        cpuinfo = handle.read()
    models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    cpus = len(re.findall(r"^processor\s*:", cpuinfo, re.M))
    with open("/proc/meminfo", encoding="utf-8") as handle:
        mem_kb = int(re.search(r"^MemTotal:\s*(\d+) kB", handle.read(), re.M).group(1))
    return {"CPU": "%s × %d" % (models[0] if models else platform.processor() or "unknown", cpus),
            "RAM": "%.1f GiB" % (mem_kb / 1048576.0), "kernel": platform.release(),
            "Python": platform.python_version()}


def main_inventory(args):
    import yaml
    with open(args.base, encoding="utf-8") as handle:
        base = yaml.safe_load(handle)
    inventory = scale(base, args.hosts, os.path.join(os.path.abspath(args.dir), "pki"), args.network)
    os.makedirs(os.path.join(args.dir, "inventory"), exist_ok=True)
    with open(os.path.join(args.dir, "inventory", "hosts.yml"), "w", encoding="utf-8") as handle:
        handle.write("---\n# Written by scripts/bench/fleet from %s: %d hosts.\n" % (args.base, args.hosts))
        yaml.safe_dump(inventory, handle, default_flow_style=False, sort_keys=False)
    with open(os.path.join(args.dir, "ansible.cfg"), "w", encoding="utf-8") as handle:
        handle.write(ansible_cfg(args.hosts, args.forks_max))
    size = dict(shape(inventory), forks=min(args.hosts, args.forks_max),
                host_names=base_hosts(inventory["all"]["children"]))
    with open(os.path.join(args.dir, "size.json"), "w", encoding="utf-8") as handle:
        json.dump(size, handle, indent=2)
    print(json.dumps({key: size[key] for key in ("hosts", "services", "edges", "forks")}))


def main_report(args):
    sizes = []
    for directory in sorted(glob.glob(os.path.join(args.out, "hosts-*")),
                            key=lambda path: int(re.sub(r"\D", "", os.path.basename(path)) or 0)):
        with open(os.path.join(directory, "size.json"), encoding="utf-8") as handle:
            size = json.load(handle)
        steps = []
        if os.path.exists(os.path.join(directory, "control-plane.json")):
            with open(os.path.join(directory, "control-plane.json"), encoding="utf-8") as handle:
                steps = json.load(handle)
        logs = {}
        for step in steps:
            if step.get("log") and os.path.exists(os.path.join(directory, step["log"])):
                with open(os.path.join(directory, step["log"]), encoding="utf-8") as handle:
                    logs[step["log"]] = handle.read()
        row = summarize_size(size, steps, logs)
        status_file = os.path.join(directory, "status")
        if os.path.exists(status_file):
            with open(status_file, encoding="utf-8") as handle:
                row["status"] = handle.read().strip() or "ok"
        sizes.append(row)
    report = {"started_utc": args.started or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
              "argv": args.argv.split() if args.argv else [], "base": args.base_shape,
              "machine": machine(), "sizes": sizes}
    with open(os.path.join(args.out, "fleet.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    text = render(report)
    with open(os.path.join(args.out, "fleet.md"), "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    inventory = sub.add_parser("inventory")
    inventory.add_argument("--base", required=True)
    inventory.add_argument("--hosts", type=int, required=True)
    inventory.add_argument("--dir", required=True)
    inventory.add_argument("--network", default=NETWORK)
    inventory.add_argument("--forks-max", type=int, default=FORKS_MAX)
    report = sub.add_parser("report")
    report.add_argument("--out", required=True)
    report.add_argument("--argv", default="")
    report.add_argument("--started", default="")
    report.add_argument("--base-shape", default="10 hosts, 8 services, 9 edges")
    args = parser.parse_args(argv)
    try:
        if args.action == "inventory":
            main_inventory(args)
        else:
            main_report(args)
    except ValueError as error:
        sys.stderr.write("fleet: %s\n" % error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
