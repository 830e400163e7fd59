"""A large, valid, deterministic project for the benchmarks (`python -m benchmarks.generate DIR`).

Same parameters and seed, same bytes: timings of different runs compare like with like.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.catalog import ENTITIES, ActionDef, App, InputField, Json, TriggerDef, build_app

try:
    from yaml import CSafeDumper as _BaseDumper
except ImportError:  # pragma: no cover - libyaml missing
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]


class Dumper(_BaseDumper):
    """Hand-written projects have no `&id001` anchors: write shared objects out in full."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


ENV = "bench"
PREFIXES = ("nova", "blue", "swift", "prime", "bright", "cloud", "pixel", "terra", "hyper", "lumen")
SUFFIXES = ("ly", "hub", "io", "desk", "works")
WORDS = (
    "north",
    "acme",
    "globex",
    "initech",
    "umbrella",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "hooli",
    "vandelay",
    "duff",
    "oscorp",
    "aperture",
    "gringotts",
)
NOUNS = ("labs", "foods", "logistics", "retail", "health", "studio", "media", "travel", "bank")


@dataclass(frozen=True)
class Params:
    connectors: int = 50
    consumers: int = 5000
    automations_per_consumer: int = 10
    blueprints: int = 20
    blueprint_share: float = 0.7
    seed: int = 20261128

    def digest(self) -> str:
        """Cache key: the parameters and the generator's own source (a code change regenerates)."""
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        for module in ("catalog.py", "generate.py"):
            h.update((Path(__file__).parent / module).read_bytes())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class Param:
    name: str
    schema: Json
    required: bool
    kind: str  # channel | id | state


@dataclass(frozen=True)
class Blueprint:
    key: str
    trigger: TriggerDef
    action: ActionDef
    params: tuple[Param, ...]
    document: Json


# -- mapping: action inputs from a trigger payload -------------------------------------------


def _body_text(rng: random.Random, t: TriggerDef) -> str:
    e = t.entity
    extra = next((n for n, s in e.extras if s.get("type") == "string"), None)
    variants = [
        f"{e.label} {{{{ payload.{e.id} }}}}: {{{{ payload.{e.title} }}}}",
        f"New {e.name} from {{{{ payload.{e.person}.name | default('someone', true) }}}} "
        f"({{{{ payload.{e.state} }}}})",
        f"[{{{{ consumer.key }}}}] {{{{ payload.{e.title} }}}} by "
        f"{{{{ payload.{e.person}.email | default('unknown', true) }}}}",
    ]
    if extra:
        variants.append(f"{{{{ payload.{e.title} }}}} ({extra}: {{{{ payload.{extra} }}}})")
    if any(n == "company" for n, _ in e.extras):
        variants.append(f"{{{{ payload.{e.title} }}}} at {{{{ payload.company.name }}}}")
    return rng.choice(variants)


def map_inputs(
    rng: random.Random, t: TriggerDef, a: ActionDef, blueprint: bool
) -> tuple[Json, list[Param]]:
    """Fill an action's inputs from the payload, params (blueprints) or literals (inline)."""
    inputs: Json = {}
    params: list[Param] = []
    same_record = t.app == a.app and t.entity == a.entity
    for f in a.fields:
        if not f.required and rng.random() < 0.6:
            continue
        inputs[f.name] = _fill(rng, t, a, f, blueprint, same_record, params)
    return inputs, params


def _fill(
    rng: random.Random,
    t: TriggerDef,
    a: ActionDef,
    f: InputField,
    blueprint: bool,
    same_record: bool,
    params: list[Param],
) -> Any:
    e = t.entity
    if f.kind == "title":
        title = f"{{{{ payload.{e.title} }}}}"
        return rng.choice([title, f"{e.label} {title}"])
    if f.kind == "email":
        return f"{{{{ payload.{e.person}.email | default('noreply@example.com', true) }}}}"
    if f.kind == "body":
        return _body_text(rng, t)
    if f.kind == "flag":
        return rng.random() < 0.5
    if f.kind == "id" and same_record:
        return f"{{{{ payload.{e.id} }}}}"
    if not blueprint:
        return _literal(rng, f)
    name = {"id": f"{a.entity.name}_id", "channel": "channel", "state": f"new_{f.name}"}[f.kind]
    schema: Json = dict(f.schema) if f.kind == "state" else {"type": "string"}
    schema["description"] = f"{a.entity.label} {f.name} to use"
    params.append(Param(name, schema, f.kind != "state", f.kind))
    if f.kind == "state":
        return f"{{{{ params.{name} | default('{f.schema['enum'][0]}') }}}}"
    return f"{{{{ params.{name} }}}}"


def _literal(rng: random.Random, f: InputField) -> Any:
    if f.kind == "state":
        return rng.choice(f.schema["enum"])
    if f.kind == "channel":
        return f"C0{rng.randrange(16**8):08X}"
    return f"rec_{rng.randrange(10**6):06d}"


def _filter(rng: random.Random, t: TriggerDef) -> str:
    e = t.entity
    variants = [
        f"payload.{e.state} == '{rng.choice(e.states)}'",
        f"payload.{e.person}.email != `null`",
        f"payload.{e.state} != '{e.states[-1]}' && payload.{e.person}.name != `null`",
    ]
    if any(n == "total" for n, _ in e.extras):
        variants.append(f"to_number(payload.total) > `{rng.choice([50, 100, 1000])}`")
    return rng.choice(variants)


# -- files -------------------------------------------------------------------------------------


def build_apps(rng: random.Random, count: int) -> list[App]:
    vendors = [p + s for s in SUFFIXES for p in PREFIXES]
    if count > len(vendors):
        vendors += [f"{v}{n}" for n in range(2, count // len(vendors) + 2) for v in vendors]
    return [build_app(rng, v, v.capitalize(), rng.sample(ENTITIES, 2)) for v in vendors[:count]]


def build_blueprints(rng: random.Random, apps: list[App], count: int) -> list[Blueprint]:
    out: list[Blueprint] = []
    seen: set[str] = set()
    while len(out) < count:
        source = rng.choice(apps)
        target = source if rng.random() < 0.2 else rng.choice(apps)
        t, a = rng.choice(source.triggers), rng.choice(target.actions)
        key = f"{t.key}-to-{a.app}-{a.key}"
        if key in seen:
            continue
        seen.add(key)
        action_input, params = map_inputs(rng, t, a, blueprint=True)
        trigger_input: Json = {}
        if t.kind == "poll":
            name = f"only_{t.entity.state}"
            state = {"type": "string", "enum": list(t.entity.states)}
            params.append(Param(name, state, False, "state"))
            trigger_input[t.entity.state] = f"{{{{ params.{name} | default(none) }}}}"
        doc: Json = {
            "blueprint": key,
            "name": f"{a.name} in {target.label} for each {t.entity.name} ({source.label})",
            "description": f"{source.label} `{t.key}` ({t.kind}) → {target.label} `{a.key}`.",
            "params": {
                "type": "object",
                "required": sorted({p.name for p in params if p.required}),
                "properties": {p.name: p.schema for p in params},
                "additionalProperties": False,
            },
            "trigger": {"app": t.app, "trigger": t.key, "input": trigger_input},
            "action": {"app": a.app, "action": a.key, "input": action_input},
        }
        if rng.random() < 0.3:
            doc["filter"] = _filter(rng, t)
        out.append(Blueprint(key, t, a, tuple(params), doc))
    return out


def _param_value(rng: random.Random, p: Param) -> Any:
    if p.kind == "state":
        return rng.choice(p.schema["enum"])
    if p.kind == "channel":
        return f"C0{rng.randrange(16**8):08X}"
    return str(rng.randrange(10**4, 10**7))


def _secret(var: str) -> str:
    return f"${{{var}:-bench-not-a-secret}}"


def build_consumer(
    rng: random.Random, index: int, apps: dict[str, App], blueprints: list[Blueprint], p: Params
) -> Json:
    key = f"{rng.choice(WORDS)}-{rng.choice(NOUNS)}-{index:04d}"
    var_prefix = re.sub(r"[^A-Z0-9]", "_", key.upper())
    want = rng.randint(2, 4)
    used: list[str] = []
    for bp in rng.sample(blueprints, len(blueprints)):
        pair = [x for x in dict.fromkeys([bp.trigger.app, bp.action.app]) if x not in used]
        if len(used) + len(pair) <= want:
            used += pair
        if len(used) == want:
            break
    names = sorted(apps)
    while len(used) < want:
        candidate = rng.choice(names)
        if candidate not in used:
            used.append(candidate)
    credentials: Json = {}
    for app_key in used:
        app = apps[app_key]
        if rng.random() < 0.1:
            credentials[app_key] = {"app": app_key, "stored": True}
            continue
        var = f"{var_prefix}_{re.sub(r'[^A-Z0-9]', '_', app_key.upper())}"
        values = (
            {"account": key.split("-")[0] + f"-{index}", "api_key": _secret(f"{var}_API_KEY")}
            if app.auth == "api_key"
            else {"token": _secret(f"{var}_TOKEN")}
        )
        credentials[app_key] = {"app": app_key, "values": values}
    usable = [bp for bp in blueprints if {bp.trigger.app, bp.action.app} <= set(used)]
    n_blueprint = round(p.automations_per_consumer * p.blueprint_share) + rng.choice([-1, 0, 0, 1])
    automations: Json = {}
    for n in range(p.automations_per_consumer):
        if n < n_blueprint and usable:
            akey, entry = _from_blueprint(rng, rng.choice(usable))
        else:
            akey, entry = _inline(rng, [apps[a] for a in used])
        automations[f"{akey}-{n + 1}"] = entry
    return {
        "consumer": key,
        "name": f"{key.split('-')[0].capitalize()} {key.split('-')[1].capitalize()} #{index}",
        "credentials": credentials,
        "automations": automations,
    }


def _from_blueprint(rng: random.Random, bp: Blueprint) -> tuple[str, Json]:
    params = {p.name: _param_value(rng, p) for p in bp.params if p.required or rng.random() < 0.5}
    creds = {"action": bp.action.app}
    if bp.trigger.kind != "push":
        creds = {"trigger": bp.trigger.app, **creds}
    entry: Json = {"blueprint": bp.key, "params": params, "credentials": creds}
    if rng.random() < 0.05:
        entry["enabled"] = False
    return bp.key, entry


def _inline(rng: random.Random, apps: list[App]) -> tuple[str, Json]:
    source, target = rng.choice(apps), rng.choice(apps)
    t, a = rng.choice(source.triggers), rng.choice(target.actions)
    action_input, _ = map_inputs(rng, t, a, blueprint=False)
    trigger: Json = {"app": t.app, "trigger": t.key}
    if t.kind != "push":
        trigger["credential"] = t.app
    if t.kind == "poll":
        choice = rng.choice([None, None, *t.entity.states])
        trigger["input"] = {} if choice is None else {t.entity.state: choice}
    entry: Json = {"name": f"{a.name} from {t.entity.name} ({source.label})", "trigger": trigger}
    if rng.random() < 0.4:
        entry["filter"] = _filter(rng, t)
    entry["action"] = {"app": a.app, "action": a.key, "credential": a.app, "input": action_input}
    return f"{t.key}-{a.key.split('-')[0]}", entry


def build_environment(apps: list[App]) -> Json:
    settings: Json = {}
    for app in apps:
        entry: Json = {}
        if app.auth == "api_key":
            entry["vars"] = {"api_version": "2024-10"}
        if app.has_webhooks:
            var = re.sub(r"[^A-Z0-9]", "_", app.key.upper()) + "_WEBHOOK_SECRET"
            entry["webhook_secret"] = _secret(var)
        if entry:
            settings[app.key] = entry
    return {
        "environment": ENV,
        "release": "live",
        "database": "sqlite",
        "server": {"host": "127.0.0.1", "port": 8080, "public_url": "http://127.0.0.1:8080"},
        "auth": {
            "jwt_secret": _secret("ROLLOUT_JWT_SECRET"),
            "admin_token": _secret("ROLLOUT_ADMIN_TOKEN"),
        },
        "encryption_key": "${ROLLOUT_ENCRYPTION_KEY:-piVfsyRJT_emYW-5RkIbIQPQ4g5u41FW9mOZ2X0g_zo=}",
        "apps": settings,
        "runtime": {"workers": 8, "dry_run": True, "poll_floor": "10s"},
    }


def iter_files(p: Params) -> Iterator[tuple[str, Json]]:
    """(relative path, document) of every file of the project, in a fixed order."""
    rng = random.Random(p.seed)
    apps = build_apps(rng, p.connectors)
    blueprints = build_blueprints(rng, apps, p.blueprints)
    for app in apps:
        yield f"connectors/{app.key}.yaml", app.document
    for bp in blueprints:
        yield f"automations/{bp.key}.yaml", bp.document
    yield f"environments/{ENV}/environment.yaml", build_environment(apps)
    by_key = {a.key: a for a in apps}
    for i in range(1, p.consumers + 1):
        doc = build_consumer(rng, i, by_key, blueprints, p)
        yield f"environments/{ENV}/consumers/{doc['consumer']}.yaml", doc


def generate(out: Path, p: Params | None = None) -> dict[str, int]:
    """Write the project into `out` (replaced if it exists); return what was written."""
    p = p or Params()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {"files": 0, "bytes": 0, "automations": 0}
    header = f"# Generated by benchmarks/generate.py (seed {p.seed}); do not edit.\n"
    for rel, doc in iter_files(p):
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = header + yaml.dump(
            doc,
            Dumper=Dumper,
            sort_keys=False,
            width=100,
            allow_unicode=True,
            default_flow_style=None,
        )
        path.write_text(text, encoding="utf-8")
        counts["files"] += 1
        counts["bytes"] += len(text.encode())
        counts["automations"] += len(doc.get("automations", {}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return counts


def cached_project(workdir: Path, p: Params | None = None) -> tuple[Path, dict[str, Any]]:
    """The project for `p` under `workdir/projects/`, generated once per parameters and code."""
    p = p or Params()
    root = workdir / "projects"
    project, stamp = root / p.digest(), root / f"{p.digest()}.json"
    if project.is_dir() and stamp.is_file():
        info: dict[str, Any] = json.loads(stamp.read_text())
        return project, {**info, "generated_now": False}
    for stale in root.glob("*"):  # other parameters or an older generator
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
    project.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    counts = generate(project, p)
    info = {
        **asdict(p),
        "digest": p.digest(),
        "files": counts["files"],
        "mib": round(counts["bytes"] / 2**20, 2),
        "automations": counts["automations"],
        "generate_seconds": round(time.perf_counter() - start, 2),
    }
    stamp.write_text(json.dumps(info, indent=2))
    return project, {**info, "generated_now": True}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.generate", description=__doc__)
    parser.add_argument("outdir", type=Path)
    defaults = Params()
    parser.add_argument("--connectors", type=int, default=defaults.connectors)
    parser.add_argument("--consumers", type=int, default=defaults.consumers)
    parser.add_argument("--blueprints", type=int, default=defaults.blueprints)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    params = Params(
        connectors=args.connectors,
        consumers=args.consumers,
        blueprints=args.blueprints,
        seed=args.seed,
    )
    counts = generate(args.outdir, params)
    print(
        f"{args.outdir}: {counts['files']} files, {counts['bytes'] / 2**20:.1f} MiB, "
        f"{counts['automations']} automations"
    )


if __name__ == "__main__":
    main()
