"""Split nested state (dicts, lists, tensors, numbers) into flat safetensors tensors + a JSON tree.

Optimizer and module state dicts nest tensors inside dicts with int keys; safetensors wants a flat
name → tensor map and JSON wants string keys. The skeleton keeps the structure, every tensor
becomes {"$tensor": name} and every dict {"$dict": [[key, value], ...]} so int keys survive.
"""
from __future__ import annotations

from typing import Any

import torch

TENSOR, DICT, TUPLE = "$tensor", "$dict", "$tuple"


def split_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, torch.Tensor):
            tensors[path] = node.detach().contiguous().cpu()
            return {TENSOR: path}
        if isinstance(node, dict):
            return {DICT: [[key, walk(value, f"{path}.{key}" if path else str(key))] for key, value in node.items()]}
        if isinstance(node, tuple):
            return {TUPLE: [walk(value, f"{path}.{i}") for i, value in enumerate(node)]}
        if isinstance(node, list):
            return [walk(value, f"{path}.{i}") for i, value in enumerate(node)]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise TypeError(f"cannot store {type(node).__name__} at {path!r}")

    return tensors, walk(state, prefix)


def join_state(tensors: dict[str, torch.Tensor], skeleton: Any) -> Any:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if TENSOR in node:
                name = node[TENSOR]
                if name not in tensors:
                    raise ValueError(f"tensor {name!r} is missing")
                return tensors[name]
            if DICT in node:
                return {_key(key): walk(value) for key, value in node[DICT]}
            if TUPLE in node:
                return tuple(walk(value) for value in node[TUPLE])
            raise ValueError(f"unexpected object in state tree: {sorted(node)[:3]}")
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(skeleton)


def _key(key: Any) -> Any:
    if not isinstance(key, (str, int)):
        raise ValueError(f"bad key in state tree: {key!r}")
    return key
