"""Devices, processes and shardings for data-parallel training: the modern (jit + NamedSharding) form of pmap.

One 1-D mesh axis, 'data', spans every device of every process. Model and optimizer state are replicated
(`P()`); a batch is split on its leading axis (`P('data')`). Under `jax.jit`, XLA then inserts the all-reduces
itself: gradients are averaged over the global batch, and a batch-norm mean over axis 0 is the mean of the
*global* batch, exactly as on one device.

Several processes (hosts): `initialize_distributed` calls `jax.distributed.initialize()` when told to, either by
arguments (the `--coordinator/--num-processes/--process-id` flags of `arbstyle train`) or by the environment:
JAX_COORDINATOR_ADDRESS + JAX_NUM_PROCESSES + JAX_PROCESS_ID, or a cluster JAX detects itself (SLURM, Open MPI,
Cloud TPU). Each process then feeds only its own slice of every global batch (`global_batch`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

log = logging.getLogger("arbstyle.training.parallel")

DATA_AXIS = "data"

# A multi-process job launched by one of these sets the first variable; JAX reads the rest itself.
_CLUSTER_SIZE_VARS = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def distributed_request(coordinator: str | None = None, num_processes: int | None = None,
                        process_id: int | None = None) -> dict | None:
    """The arguments for jax.distributed.initialize() that the flags or environment ask for, or None for a
    single-process run. `{}` means: let JAX detect the cluster itself."""
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = num_processes if num_processes is not None else _env_int("JAX_NUM_PROCESSES")
    process_id = process_id if process_id is not None else _env_int("JAX_PROCESS_ID")
    if coordinator or num_processes is not None or process_id is not None:
        missing = [name for name, value in (("coordinator address", coordinator), ("number of processes",
                   num_processes), ("process id", process_id)) if value is None]
        if missing:
            raise ValueError(f"multi-process training needs a coordinator address, the number of processes and "
                             f"this process's id; missing: {', '.join(missing)}")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"process id {process_id} is not in [0, {num_processes})")
        return {"coordinator_address": coordinator, "num_processes": num_processes, "process_id": process_id}
    if any((_env_int(name) or 1) > 1 for name in _CLUSTER_SIZE_VARS):
        return {}
    return None


_initialized = False


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Join a multi-process job when asked to (see the module docstring); returns whether this is one.

    Must run before anything touches a JAX device. On CPU, cross-process collectives use gloo.
    """
    global _initialized
    request = distributed_request(coordinator, num_processes, process_id)
    if request is None:
        return False
    if _initialized or jax.distributed.is_initialized():
        return True
    if (request.get("num_processes") or 1) > 1 or not request:
        # CPU devices cannot all-reduce across processes without a collectives backend; harmless elsewhere.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**request)
    _initialized = True
    log.info("process %d of %d joined the job", jax.process_index(), jax.process_count())
    return True


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D ('data',) mesh over all devices (or the first `num_devices`, single-process only)."""
    devices = jax.devices()
    if num_devices:
        if jax.process_count() > 1 and num_devices != len(devices):
            raise ValueError("with several processes the mesh must span every device")
        if not 0 < num_devices <= len(devices):
            raise ValueError(f"asked for {num_devices} devices, have {len(devices)}")
        devices = devices[:num_devices]
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh) -> int:
    """The per-process batch; the global batch must split evenly over processes and devices."""
    devices, processes = mesh.devices.size, jax.process_count()
    if global_batch % devices or global_batch % processes:
        raise ValueError(f"batch size {global_batch} must be a multiple of the {devices} device(s) "
                         f"and {processes} process(es)")
    return global_batch // processes


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's slice of a batch -> global arrays sharded on 'data' (process p holds rows p*L..(p+1)*L)."""
    sharding = batch_sharding(mesh)
    return {key: jax.make_array_from_process_local_data(sharding, np.asarray(value)) for key, value in local.items()}


def replicate(tree, mesh: Mesh):
    """Host values that are identical on every process -> arrays replicated over the mesh."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def to_host(tree):
    """Replicated (or fully addressable) arrays -> numpy, on any process."""
    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(x.addressable_data(0))
        return np.asarray(x)
    return jax.tree.map(fetch, tree)


def is_primary() -> bool:
    return jax.process_index() == 0
