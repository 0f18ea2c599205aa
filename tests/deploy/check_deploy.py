#!/usr/bin/env python3
"""Offline checks of deploy/: what can be verified without a Docker daemon,
a registry or a Kubernetes API server.

  (a) every YAML file under deploy/ parses (duplicate keys are errors);
  (b) docker-compose.yml is accepted by `docker compose config -q` (or, where
      Docker's compose plugin is not installed, Debian's docker-compose), and
      its services are wired as documented: KRaft broker, topic init before
      shortfall, the config mounted, the producer, Prometheus scraping
      shortfall with the project's rules (checked with promtool), Grafana
      provisioned from monitoring/grafana/;
  (c) `kubectl kustomize deploy/kubernetes` renders the expected objects, no
      namespace, probes on /healthz and /readyz on the metrics port, non-root
      read-only root filesystem with the state volume writable, resources,
      grace period above processing.shutdown_timeout, selectors that match;
  (d) the shortfall configs (compose, the ConfigMap's, the image's) are
      accepted by `shortfall run --print-config`, with metrics on
      0.0.0.0:<port> and state on the volume;
  (e) the Dockerfile: Debian 12 stages, librdkafka and a Release build of the
      shortfall target in the build stage, and a final stage that copies the
      binary, librdkafka and the catalog, installs the packages of every
      shared library the binary needs (readelf + dpkg on the binary built
      here), runs as a non-root USER, and has the documented ENTRYPOINT, CMD,
      EXPOSE and VOLUME.

A missing tool is a failure that names what to install, never a skip.
Images are not built and nothing is started: see deploy/README.md.

Usage: check_deploy.py SHORTFALL_BINARY
"""
import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

REPO = DEPLOY = COMPOSE_FILE = KUSTOMIZE_DIR = DOCKERFILE = None  # set_root()
STATE_DIR = "/var/lib/shortfall"
CONFIG_PATH = "/etc/shortfall/shortfall.yaml"


class Report:
    def __init__(self):
        self.passed = 0
        self.failures = []
        self.notes = []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print("ok    %s" % what)
        else:
            self.failures.append(what)
            print("FAIL  %s%s" % (what, (": " + " | ".join(str(detail).splitlines())) if detail else ""))
        return ok

    def fail(self, what, detail=""):
        return self.check(False, what, detail)

    def note(self, what):
        self.notes.append(what)
        print("note  %s" % what)


R = Report()

try:
    import yaml
except ImportError:
    # The interpreter CMake found may be another than Debian's, whose
    # python3-yaml tools/install-deps.sh installs: run under that one.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("FAIL  PyYAML is not installed for %s: install it (pip install pyyaml; Debian's "
          "python3-yaml serves /usr/bin/python3)" % sys.executable)
    sys.exit(1)


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _strict_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, "key %r given twice" % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _strict_mapping)


def load_all(text):
    return [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]


def set_root(root):
    global REPO, DEPLOY, COMPOSE_FILE, KUSTOMIZE_DIR, DOCKERFILE
    REPO = Path(root).resolve()
    DEPLOY = REPO / "deploy"
    COMPOSE_FILE = DEPLOY / "docker-compose.yml"
    KUSTOMIZE_DIR = DEPLOY / "kubernetes"
    DOCKERFILE = DEPLOY / "Dockerfile"


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def rel(path):
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


def seconds(duration):
    """shortfall's durations: 250ms, 90s, 15m, 6h, 7d -> seconds (float)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", str(duration))
    if not m:
        raise ValueError("not a duration: %r" % (duration,))
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def port_of(bind):
    return int(str(bind).rsplit(":", 1)[1])


# --------------------------------------------------------------------- tools

def find_tools():
    tools = {}
    r = run(["docker", "compose", "version"]) if shutil.which("docker") else None
    if r is not None and r.returncode == 0:
        tools["compose"] = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        tools["compose"] = ["docker-compose"]
        R.note("Docker's compose plugin (`docker compose`) is not installed and is not packaged in "
               "Debian 12; validating with docker-compose (Debian's is 1.29) instead")
    else:
        R.fail("docker compose is available",
               "install Debian's docker-compose (apt-get install docker-compose) or Docker's "
               "compose plugin (docker-compose-plugin, from Docker's apt repository)")
    if shutil.which("kubectl"):
        tools["kubectl"] = "kubectl"
    else:
        R.fail("kubectl is available",
               "install kubectl (the Kubernetes apt repository at pkgs.k8s.io; Debian 12's "
               "kubernetes-client package also has `kubectl kustomize`)")
    if shutil.which("promtool"):
        tools["promtool"] = "promtool"
    else:
        R.fail("promtool is available", "apt-get install prometheus (it ships promtool)")
    for tool, package in (("readelf", "binutils"), ("ldd", "libc-bin"), ("dpkg", "dpkg")):
        if shutil.which(tool):
            tools[tool] = tool
        else:
            R.fail("%s is available" % tool, "apt-get install %s" % package)
    return tools


# ---------------------------------------------------------------- (a) YAML

def check_yaml_files():
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    R.check(len(files) >= 8, "deploy/ holds the YAML files (found %d)" % len(files))
    parsed = {}
    for path in files:
        try:
            docs = load_all(path.read_text())
        except yaml.YAMLError as e:
            R.fail("%s parses as YAML" % rel(path), str(e).replace("\n", " "))
            continue
        R.check(bool(docs), "%s parses as YAML" % rel(path), "no document")
        parsed[path] = docs
    return parsed


# --------------------------------------------------------- (d) shortfall config

def print_config(shortfall, path, extra=(), name=None):
    """`shortfall run --print-config` of a config file -> the effective config (dict) or None."""
    r = run([shortfall, "run", "--print-config", "--config", str(path), *extra])
    if not R.check(r.returncode == 0, "shortfall run --print-config accepts %s" % (name or rel(path)),
                   "exit %d: %s" % (r.returncode, (r.stderr or r.stdout).strip()[:500])):
        return None
    try:
        return yaml.safe_load(r.stdout)
    except yaml.YAMLError as e:
        R.fail("print-config output of %s parses" % rel(path), str(e))
        return None


def check_container_config(config, name, metrics_port=9464):
    if config is None:
        return
    bind = config["metrics"]["bind"]
    R.check(bind == "0.0.0.0:%d" % metrics_port,
            "%s: metrics.bind listens on every interface on %d" % (name, metrics_port), bind)
    R.check(config["state"]["dir"] == STATE_DIR, "%s: state.dir is the volume %s" % (name, STATE_DIR),
            config["state"]["dir"])


# --------------------------------------------------------------- (b) compose

def mounts(service):
    """Volume entries of a compose service as (source, target) pairs, long or short syntax."""
    out = []
    for v in service.get("volumes", []) or []:
        if isinstance(v, dict):
            out.append((v.get("source"), v.get("target")))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1] if len(parts) > 1 else parts[0]))
    return out


def host_path(source):
    """Bind sources are relative to the compose file's directory; named volumes are not paths."""
    if source and (source.startswith(".") or source.startswith("/")):
        return (COMPOSE_FILE.parent / source).resolve()
    return None


def command_words(cmd):
    if cmd is None:
        return []
    return list(cmd) if isinstance(cmd, list) else shlex.split(cmd)


def depends_condition(service, name):
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return "service_started" if name in deps else None
    if name not in deps:
        return None
    return (deps[name] or {}).get("condition", "service_started")


def compose_duration_seconds(text):
    total = 0.0
    for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(text)):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def check_compose(tools, shortfall, version):
    if "compose" in tools:
        r = run(tools["compose"] + ["-f", str(COMPOSE_FILE), "config", "-q"], cwd=REPO)
        R.check(r.returncode == 0, "%s config -q accepts deploy/docker-compose.yml" % " ".join(tools["compose"]),
                (r.stderr or r.stdout).strip()[:800])
    try:
        compose = load_all(COMPOSE_FILE.read_text())[0]
    except (yaml.YAMLError, IndexError):
        return  # reported by check_yaml_files
    services = compose.get("services", {})
    want = {"kafka", "topics", "shortfall", "producer", "prometheus", "grafana"}
    if not R.check(want <= set(services), "compose has the services %s" % sorted(want),
                   "missing %s" % sorted(want - set(services))):
        return

    kafka = services["kafka"]
    env = kafka.get("environment", {})
    R.check(re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka.get("image", "")) is not None,
            "kafka runs the official apache/kafka image at a pinned 4.x tag", kafka.get("image"))
    roles = set(str(env.get("KAFKA_PROCESS_ROLES", "")).split(","))
    R.check(roles == {"broker", "controller"}, "kafka is one KRaft node (broker,controller)", str(roles))
    advertised = str(env.get("KAFKA_ADVERTISED_LISTENERS", ""))

    config_mounts = [(s, t) for s, t in mounts(services["shortfall"]) if t == CONFIG_PATH]
    config_file = host_path(config_mounts[0][0]) if config_mounts else None
    R.check(config_file == DEPLOY / "compose" / "shortfall.yaml",
            "shortfall mounts deploy/compose/shortfall.yaml at %s" % CONFIG_PATH, str(config_mounts))
    config = print_config(shortfall, DEPLOY / "compose" / "shortfall.yaml")
    check_container_config(config, "compose shortfall.yaml")
    if config is None:
        return
    brokers = config["kafka"]["bootstrap_servers"]
    R.check(all(b in advertised for b in brokers.split(",")),
            "compose shortfall.yaml's brokers (%s) are kafka's advertised listeners" % brokers, advertised)
    metrics_port = port_of(config["metrics"]["bind"])

    topics = services["topics"]
    R.check(topics.get("image") == kafka.get("image"), "topics uses the kafka image (kafka-topics.sh)")
    R.check(depends_condition(topics, "kafka") == "service_healthy", "topics waits for a healthy kafka")
    R.check("healthcheck" in kafka, "kafka has a healthcheck")
    script = " ".join(command_words(topics.get("command")))
    for key in ("shipments", "customs"):
        name = config["topics"][key]
        R.check("kafka-topics.sh" in script and "--create" in script and name in script,
                "topics creates the input topic %s" % name)

    shortfall_svc = services["shortfall"]
    build = shortfall_svc.get("build") or {}
    R.check((COMPOSE_FILE.parent / build.get("context", "")).resolve() == REPO
            and build.get("dockerfile") == "deploy/Dockerfile",
            "shortfall is built from deploy/Dockerfile with the repository root as context", str(build))
    R.check(shortfall_svc.get("image") == "shortfall:%s" % version,
            "shortfall's image tag is the binary's version %s" % version, shortfall_svc.get("image"))
    R.check(depends_condition(shortfall_svc, "topics") == "service_completed_successfully",
            "shortfall starts after topics completed")
    R.check(any(t == config["state"]["dir"] and host_path(s) is None for s, t in mounts(shortfall_svc)),
            "shortfall keeps %s on a named volume" % config["state"]["dir"])
    R.check(compose_duration_seconds(shortfall_svc.get("stop_grace_period", "10s"))
            > seconds(config["processing"]["shutdown_timeout"]),
            "shortfall's stop_grace_period exceeds processing.shutdown_timeout")
    R.check(any(str(p).split(":")[-1].split("/")[0] == str(metrics_port) for p in shortfall_svc.get("ports", [])),
            "shortfall publishes the metrics port %d" % metrics_port)

    producer = services["producer"]
    words = command_words(producer.get("command"))
    R.check(producer.get("image") == shortfall_svc.get("image"), "producer runs the shortfall image")
    def flag_value(flag):
        i = words.index(flag) if flag in words else -1
        return words[i + 1] if 0 <= i < len(words) - 1 else None
    R.check(words[:1] == ["gen"] and "--to-kafka" in words and flag_value("--scenario") == "demo"
            and flag_value("--brokers") == brokers and flag_value("--rate") is not None,
            "producer runs gen --scenario demo --to-kafka --brokers %s --rate N" % brokers, str(words))
    R.check(depends_condition(producer, "topics") == "service_completed_successfully",
            "producer starts after topics completed")

    check_compose_prometheus(tools, services["prometheus"], metrics_port)
    check_compose_grafana(services["grafana"])


def check_compose_prometheus(tools, prometheus, metrics_port):
    R.check(str(prometheus.get("image", "")).startswith("prom/prometheus:"), "prometheus runs prom/prometheus")
    by_target = {t: host_path(s) for s, t in mounts(prometheus)}
    config_src = by_target.get("/etc/prometheus/prometheus.yml")
    if not R.check(config_src == DEPLOY / "compose" / "prometheus.yml",
                   "prometheus reads deploy/compose/prometheus.yml", str(config_src)):
        return
    monitoring_targets = [t for t, s in by_target.items() if s == REPO / "monitoring" / "prometheus"]
    R.check(len(monitoring_targets) == 1, "prometheus mounts monitoring/prometheus/")
    prom = load_all(config_src.read_text())[0]
    targets = [t for job in prom.get("scrape_configs", []) for sc in job.get("static_configs", [])
               for t in sc.get("targets", [])]
    R.check("shortfall:%d" % metrics_port in targets,
            "compose prometheus.yml scrapes shortfall:%d" % metrics_port, str(targets))
    if "promtool" not in tools or not monitoring_targets:
        return
    # Lay out the container's /etc/prometheus: this config, and monitoring/prometheus/
    # where it is mounted, so promtool also checks the rule files it loads.
    with tempfile.TemporaryDirectory() as tmp:
        etc = Path(tmp) / "etc-prometheus"
        target = PurePosixPath(monitoring_targets[0])
        if target.parent != PurePosixPath("/etc/prometheus"):
            R.fail("monitoring/prometheus/ is mounted directly under /etc/prometheus", str(target))
            return
        etc.mkdir()
        shutil.copy(config_src, etc / "prometheus.yml")
        (etc / target.name).symlink_to(REPO / "monitoring" / "prometheus")
        r = run([tools["promtool"], "check", "config", str(etc / "prometheus.yml")])
        R.check(r.returncode == 0, "promtool check config passes on the compose prometheus.yml and its rules",
                (r.stdout + r.stderr).strip()[-800:])
        compose_rules = resolve_rule_files(prom, etc)
        shared_path = REPO / "monitoring" / "prometheus" / "prometheus.yml"
        if shared_path.exists():
            shared = load_all(shared_path.read_text())[0] or {}
            shared_rules = resolve_rule_files(shared, shared_path.parent)
            R.check(shared_rules <= compose_rules,
                    "compose prometheus.yml loads every rule file monitoring/prometheus/prometheus.yml loads",
                    "missing %s" % sorted(rel(p) for p in shared_rules - compose_rules))
            if not shared_rules:
                R.note("monitoring/prometheus/prometheus.yml loads no rule files")
        else:
            R.note("monitoring/prometheus/prometheus.yml does not exist yet: rule files not compared")
        if not compose_rules:
            R.note("no rule files under monitoring/prometheus/rules/ yet")


def resolve_rule_files(prom, base):
    out = set()
    for pattern in prom.get("rule_files", []) or []:
        out |= {p.resolve() for p in Path(base).glob(pattern) if p.is_file()}
    return out


def expand_env(text, env):
    """A provisioning value as Grafana reads it: split at "$$" (a literal "$"), then Go's
    os.ExpandEnv: $VAR and ${VAR}, where the name is everything up to "}" (so
    ${VAR:-default} is not a default: it looks up a variable named "VAR:-default").
    Unset variables expand to ""."""
    def one(m):
        return str(env.get(m.group(1) if m.group(1) is not None else m.group(2), ""))
    return "$".join(re.sub(r"\$\{([^}]*)\}|\$(\w+)", one, part) for part in str(text).split("$$"))


def check_compose_grafana(grafana):
    R.check(str(grafana.get("image", "")).startswith("grafana/grafana:"), "grafana runs grafana/grafana")
    by_source = {}
    for s, t in mounts(grafana):
        if host_path(s) is not None:
            by_source[host_path(s)] = t
    provisioning = REPO / "monitoring" / "grafana" / "provisioning"
    dashboards = REPO / "monitoring" / "grafana" / "dashboards"
    R.check(by_source.get(provisioning) == "/etc/grafana/provisioning",
            "grafana mounts monitoring/grafana/provisioning/ at /etc/grafana/provisioning")
    dashboards_target = by_source.get(dashboards)
    R.check(dashboards_target is not None, "grafana mounts monitoring/grafana/dashboards/")
    if not provisioning.is_dir():
        R.note("monitoring/grafana/provisioning/ does not exist yet: datasource and dashboard "
               "providers not cross-checked")
        return
    env = grafana.get("environment", {}) or {}
    urls = []
    for path in sorted((provisioning / "datasources").glob("*.y*ml")):
        for doc in load_all(path.read_text()):
            for ds in doc.get("datasources", []) or []:
                if ds.get("type") == "prometheus":
                    urls.append(expand_env(ds.get("url", ""), env))
    R.check(bool(urls) and all(re.fullmatch(r"https?://prometheus:9090/?", u) for u in urls),
            "grafana's Prometheus datasource points at the compose service http://prometheus:9090",
            "found %s" % urls)
    paths = []
    for path in sorted((provisioning / "dashboards").glob("*.y*ml")):
        for doc in load_all(path.read_text()):
            for provider in doc.get("providers", []) or []:
                paths.append(expand_env((provider.get("options") or {}).get("path", ""), env))
    R.check(bool(paths) and dashboards_target is not None
            and all(PurePosixPath(p) == PurePosixPath(dashboards_target)
                    or PurePosixPath(dashboards_target) in PurePosixPath(p).parents for p in paths),
            "grafana's dashboard provider reads where monitoring/grafana/dashboards/ is mounted (%s)"
            % dashboards_target, "provider paths %s" % paths)


# ------------------------------------------------------------ (c) kubernetes

def container_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_kubernetes(tools, shortfall, version):
    if "kubectl" not in tools:
        return
    r = run([tools["kubectl"], "kustomize", str(KUSTOMIZE_DIR)])
    if not R.check(r.returncode == 0, "kubectl kustomize deploy/kubernetes renders", r.stderr.strip()[:800]):
        return
    objects = load_all(r.stdout)
    kinds = sorted(o["kind"] for o in objects)
    R.check(kinds == ["ConfigMap", "PodDisruptionBudget", "Service", "Service", "StatefulSet"],
            "kustomization renders ConfigMap, StatefulSet, 2 Services, PodDisruptionBudget", str(kinds))
    R.check(all("namespace" not in o.get("metadata", {}) for o in objects), "no object names a namespace")
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    if kinds.count("StatefulSet") != 1 or kinds.count("ConfigMap") != 1:
        return
    sts = by_kind["StatefulSet"][0]
    cm = by_kind["ConfigMap"][0]
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    pod_labels = spec["template"]["metadata"].get("labels", {})
    containers = pod.get("containers", [])
    if not R.check(len(containers) == 1, "the StatefulSet has one container"):
        return
    c = containers[0]

    # The config: the ConfigMap's shortfall.yaml, mounted where --config reads it.
    args = c.get("args", [])
    config_arg = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    R.check(args[:1] == ["run"] and config_arg == CONFIG_PATH,
            "the container runs `shortfall run --config %s`" % CONFIG_PATH, str(args))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts_by_path = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    config_mount = mounts_by_path.get(str(PurePosixPath(CONFIG_PATH).parent))
    config_volume = volumes.get(config_mount["name"]) if config_mount else None
    R.check(bool(config_volume) and config_volume.get("configMap", {}).get("name") == cm["metadata"]["name"]
            and PurePosixPath(CONFIG_PATH).name in cm.get("data", {}),
            "the ConfigMap's %s is mounted at %s" % (PurePosixPath(CONFIG_PATH).name, CONFIG_PATH))
    config = None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "configmap-shortfall.yaml"
        path.write_text(cm.get("data", {}).get("shortfall.yaml", ""))
        config = print_config(shortfall, path, name="the ConfigMap's shortfall.yaml")
    check_container_config(config, "ConfigMap shortfall.yaml")
    if config is None:
        return
    R.check(config["repartition"]["replication_factor"] >= 3,
            "ConfigMap shortfall.yaml uses replication_factor >= 3 (a production cluster)")
    metrics_port = port_of(config["metrics"]["bind"])

    # Probes on the metrics port.
    live = c.get("livenessProbe", {}).get("httpGet", {})
    ready = c.get("readinessProbe", {}).get("httpGet", {})
    R.check(live.get("path") == "/healthz" and container_port(c, live.get("port")) == metrics_port,
            "liveness probe: GET /healthz on the metrics port %d" % metrics_port, str(live))
    R.check(ready.get("path") == "/readyz" and container_port(c, ready.get("port")) == metrics_port,
            "readiness probe: GET /readyz on the metrics port %d" % metrics_port, str(ready))

    # State on a PVC from volumeClaimTemplates, mounted at state.dir.
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
    state_mount = mounts_by_path.get(config["state"]["dir"])
    R.check(state_mount is not None and state_mount["name"] in claims and not state_mount.get("readOnly"),
            "state.dir %s is a writable PersistentVolumeClaim (volumeClaimTemplates)" % config["state"]["dir"])

    # Security: non-root, read-only root filesystem.
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    run_as = csc.get("runAsUser", psc.get("runAsUser"))
    R.check(csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True and run_as not in (None, 0),
            "runs as non-root (runAsNonRoot, runAsUser %s)" % run_as)
    R.check(csc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    R.check(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    R.check(psc.get("fsGroup") not in (None, 0), "fsGroup makes the state volume writable by the user")

    res = c.get("resources", {})
    R.check(all(k in res.get(kind, {}) for kind in ("requests", "limits") for k in ("cpu", "memory")),
            "cpu and memory requests and limits are set", str(res))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    R.check(grace > seconds(config["processing"]["shutdown_timeout"]),
            "terminationGracePeriodSeconds %s > processing.shutdown_timeout %s"
            % (grace, config["processing"]["shutdown_timeout"]))
    R.check(c.get("image") == "shortfall:%s" % version,
            "the rendered image is shortfall:%s (the binary's version)" % version, c.get("image"))
    R.check(spec.get("selector", {}).get("matchLabels", {}).items() <= pod_labels.items(),
            "the StatefulSet's selector matches its pod labels")

    # Services: a headless one governing the StatefulSet, one for metrics.
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    headless = services.get(spec.get("serviceName"))
    R.check(headless is not None and headless["spec"].get("clusterIP") == "None",
            "serviceName %s is a headless Service" % spec.get("serviceName"))
    for name, svc in services.items():
        R.check(svc["spec"].get("selector", {}).items() <= pod_labels.items() and svc["spec"].get("selector"),
                "Service %s selects the shortfall pods" % name)
    metrics = [s for s in services.values() if s is not headless]
    if R.check(len(metrics) == 1, "one metrics Service besides the headless one"):
        m = metrics[0]
        ann = m["metadata"].get("annotations", {})
        R.check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(metrics_port)
                and ann.get("prometheus.io/path", "/metrics") == "/metrics",
                "metrics Service has prometheus.io annotations for port %d" % metrics_port, str(ann))
        R.check(any(container_port(c, p.get("targetPort", p.get("port"))) == metrics_port
                    for p in m["spec"].get("ports", [])),
                "metrics Service targets the metrics port")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if pdbs:
        pdb = pdbs[0]["spec"]
        R.check(pdb.get("maxUnavailable") == 1, "PodDisruptionBudget maxUnavailable 1")
        R.check(pdb.get("selector", {}).get("matchLabels", {}).items() <= pod_labels.items(),
                "PodDisruptionBudget selects the shortfall pods")
    text = (KUSTOMIZE_DIR / "statefulset.yaml").read_text()
    R.check("application_id" in text and "partition count" in text,
            "statefulset.yaml explains scaling to the partition count with one application_id")


# ------------------------------------------------------------ (e) Dockerfile

def dockerfile_instructions(text):
    """[(INSTRUCTION, args)] with continuations joined and comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def exec_form(args):
    try:
        value = json.loads(args)
        return value if isinstance(value, list) else None
    except ValueError:
        return None


def needed_packages(tools, shortfall):
    """Debian packages of the shared libraries the binary and librdkafka need directly."""
    libs = {}
    for line in run([tools["ldd"], shortfall]).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)

    def needed(path):
        out = run([tools["readelf"], "-d", path]).stdout
        return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)

    sonames = set(needed(shortfall))
    for soname in list(sonames):
        if soname.startswith("librdkafka") and soname in libs:
            sonames |= set(needed(libs[soname]))
    wanted = {s: libs.get(s) for s in sorted(sonames) if not s.startswith(("librdkafka", "ld-linux"))}
    # One dpkg -S for all: usrmerge means a library may be registered under
    # /lib or /usr/lib, so ask for both spellings and the real path.
    candidates = {}
    for soname, path in wanted.items():
        for c in filter(None, [path, path and "/usr" + path, path and os.path.realpath(path)]):
            candidates.setdefault(c, soname)
    owner = {}
    for line in run([tools["dpkg"], "-S", *candidates]).stdout.splitlines():
        m = re.match(r"([^:,\s]+)(?::\S+)?: (\S+)$", line)
        if m and m.group(2) in candidates:
            owner.setdefault(candidates[m.group(2)], m.group(1))
    packages = {s: owner[s] for s in wanted if s in owner}
    unresolved = [s for s in wanted if s not in owner]
    return packages, unresolved


def check_dockerfile(tools, shortfall):
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    args_defaults = {}
    stages = []
    for word, rest in instructions:
        if word == "ARG" and not stages:
            name, _, value = rest.partition("=")
            args_defaults[name] = value
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args_defaults.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append({"image": image, "name": name, "body": []})
        elif stages:
            stages[-1]["body"].append((word, rest))
    if not R.check(len(stages) >= 2, "the Dockerfile is multi-stage (%d stages)" % len(stages)):
        return
    R.check(all(re.fullmatch(r"debian:bookworm(-slim)?(@sha256:[0-9a-f]+)?", s["image"]) for s in stages),
            "every stage is Debian 12 (bookworm)", str([s["image"] for s in stages]))
    build, final = stages[0], stages[-1]
    build_runs = " ".join(rest for word, rest in build["body"] if word == "RUN")
    R.check("tools/build-librdkafka.sh" in build_runs, "the build stage builds librdkafka with tools/build-librdkafka.sh")
    R.check("-DCMAKE_BUILD_TYPE=Release" in build_runs and re.search(r"--target\s+shortfall\b", build_runs)
            and "-DSHORTFALL_BUILD_TESTS=OFF" in build_runs,
            "the build stage builds the shortfall target, Release, tests off")

    copies = []  # (from_stage or None, sources, dest)
    for word, rest in final["body"]:
        if word != "COPY":
            continue
        words = rest.split()
        from_stage = None
        while words and words[0].startswith("--"):
            if words[0].startswith("--from="):
                from_stage = words[0][len("--from="):]
            words = words[1:]
        copies.append((from_stage, words[:-1], words[-1]))

    def copied(pattern, from_build=True):
        for from_stage, sources, dest in copies:
            if from_build and from_stage != build["name"]:
                continue
            for src in sources:
                if re.search(pattern, src):
                    return dest if not dest.endswith("/") else dest + PurePosixPath(src).name
        return None

    binary = copied(r"(^|/)build/pipeline/shortfall$")
    R.check(binary is not None, "the final stage copies the shortfall binary from the build stage")
    R.check(copied(r"(^|/)catalog/critical_goods\.csv$", from_build=False) is not None,
            "the final stage copies the catalog (catalog/critical_goods.csv)")
    R.check(copied(r"librdkafka\.so\.1$") is not None and copied(r"librdkafka\+\+\.so\.1$") is not None,
            "the final stage copies librdkafka.so.1 and librdkafka++.so.1 from the build stage")
    image_config = [(s, d) for f, s, d in copies if f is None and d == CONFIG_PATH]
    if R.check(len(image_config) == 1 and len(image_config[0][0]) == 1,
               "the final stage puts a config at %s" % CONFIG_PATH):
        src = REPO / image_config[0][0][0]
        config = print_config(tools["shortfall"], src, ["--brokers", "kafka:9092"]) if src.exists() else None
        R.check(src.exists(), "the image's config %s exists" % rel(src))
        check_container_config(config, "image config %s" % rel(src))

    final_words = {}
    for word, rest in final["body"]:
        final_words.setdefault(word, []).append(rest)
    users = final_words.get("USER", [])
    user = users[-1].split(":")[0] if users else "root"
    R.check(user not in ("root", "0"), "the final stage sets USER to a non-root user", user)
    if user not in ("root", "0") and not user.isdigit():
        R.check(any(re.search(r"useradd\b.*\b%s\b" % re.escape(user), r) for r in final_words.get("RUN", [])),
                "the user %s is created in the final stage" % user)
    entry = exec_form(final_words.get("ENTRYPOINT", ["null"])[-1]) or []
    R.check(binary is not None and entry[:1] == [binary],
            "ENTRYPOINT is the copied binary (%s)" % binary, str(entry))
    cmd = exec_form(final_words.get("CMD", ["null"])[-1])
    R.check(cmd == ["run", "--config", CONFIG_PATH], "default CMD is run --config %s" % CONFIG_PATH, str(cmd))
    R.check(any("9464" in e.split() for e in final_words.get("EXPOSE", [])), "EXPOSE 9464")
    R.check(any(STATE_DIR in v for v in final_words.get("VOLUME", [])), "VOLUME %s" % STATE_DIR)

    final_runs = " ".join(final_words.get("RUN", []))
    installed = set(re.findall(r"[a-z0-9][a-z0-9+.\-]+", final_runs))
    R.check(not any(w.endswith("-dev") for w in installed), "the final stage installs no -dev package")
    if all(t in tools for t in ("readelf", "ldd", "dpkg")):
        codename = ""
        if Path("/etc/os-release").exists():
            m = re.search(r"^VERSION_CODENAME=(\S+)", Path("/etc/os-release").read_text(), re.M)
            codename = m.group(1) if m else ""
        if codename != "bookworm":
            R.note("this machine is not Debian 12 (%s): the runtime packages were not compared "
                   "with the binary's libraries" % (codename or "unknown"))
        else:
            packages, unresolved = needed_packages(tools, shortfall)
            R.check(not unresolved, "every library the binary needs belongs to a Debian package",
                    "unresolved: %s" % unresolved)
            missing = sorted({p for p in packages.values() if p not in installed and p != "libc6"})
            R.check(bool(packages) and not missing,
                    "the final stage installs the package of every shared library the binary and "
                    "librdkafka need (%d libraries)" % len(packages),
                    "missing %s" % missing)

    ignore = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
              if l.strip() and not l.startswith("#")] if (REPO / ".dockerignore").exists() else []
    for path in ("build", "build-deploy", "third_party", ".git"):
        R.check(any(fnmatch.fnmatch(path, p) for p in ignore), ".dockerignore keeps %s/ out of the context" % path)


# ------------------------------------------------------------------ main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("shortfall", help="the shortfall binary")
    p.add_argument("--root", default=Path(__file__).resolve().parents[2],
                   help="repository root holding deploy/ (default: this checkout)")
    a = p.parse_args()
    set_root(a.root)
    shortfall = os.path.abspath(a.shortfall)
    tools = find_tools()
    tools["shortfall"] = shortfall
    r = run([shortfall, "version"])
    m = re.search(r"(\d+\.\d+\.\d+)", r.stdout)
    if not R.check(r.returncode == 0 and m is not None, "shortfall version prints a version", r.stdout + r.stderr):
        sys.exit(1)
    version = m.group(1)

    print("-- (a) YAML files under deploy/")
    check_yaml_files()
    print("-- (b, d) docker-compose.yml and its configs")
    check_compose(tools, shortfall, version)
    print("-- (c, d) kubernetes/")
    check_kubernetes(tools, shortfall, version)
    print("-- (e, d) Dockerfile")
    check_dockerfile(tools, shortfall)

    print("\ncheck_deploy: %d checks passed, %d failed, %d notes" % (R.passed, len(R.failures), len(R.notes)))
    for f in R.failures:
        print("  failed: %s" % f)
    sys.exit(1 if R.failures else 0)


if __name__ == "__main__":
    main()
