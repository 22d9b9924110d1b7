"""``python -m frb hub``: which copy of a model's weights would be used; publish ``assets/weights`` to the Hub."""
from __future__ import annotations

import json

from frb.hub import DEFAULT_REPO_ID, DEFAULT_REVISION, REPO_ID_ENV, REVISION_ENV, push, repo_id, resolve


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("hub", help="where weights come from; publish assets/weights to the Hub")
    sub = p.add_subparsers(dest="hub_command", required=True)
    where = sub.add_parser("resolve", help="show which copy of a model's weights would be used")
    where.add_argument("--model", required=True)
    where.add_argument("--scale", type=int, default=4)
    where.add_argument("--repo-id", default=None, help=f"default: ${REPO_ID_ENV} or {DEFAULT_REPO_ID}")
    where.add_argument("--revision", default=None,
                       help=f"default: ${REVISION_ENV}, the manifest's pinned commit, or {DEFAULT_REVISION}")
    where.set_defaults(func=_run_resolve)
    pub = sub.add_parser("push", help="upload assets/weights with a model card")
    pub.add_argument("--repo-id", default=None, help=f"default: ${REPO_ID_ENV} or {DEFAULT_REPO_ID}")
    pub.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    pub.set_defaults(func=_run_push)


def _run_resolve(args) -> int:
    found = resolve(args.model, args.scale, args.repo_id, args.revision)
    print(json.dumps({"model": found.name, "scale": found.scale, "source": found.source,
                      "path": str(found.path) if found.path else None, "notices": list(found.notices)}, indent=2))
    return 0 if found.path is not None else 1


def _run_push(args) -> int:
    commit = push(args.repo_id, token=args.token)
    print(f"published {repo_id(args.repo_id)} at commit {commit}; assets/weights/manifest.json now pins it "
          "(hub_pin): commit the manifest so that every checkout downloads exactly these files")
    return 0
