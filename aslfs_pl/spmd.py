"""SPMD data parallel in Lightning's own loop: one process per host, every local XLA device.

torch-xla's SPMD mode runs one program over a mesh of devices: the batch is sharded along its
first axis (the mesh's ``data`` axis), parameters and optimiser state are replicated, and the
compiler inserts the collectives (the gradient all-reduce, batch norm's statistics over the
global batch). From Lightning's side the run is one process and one logical device, so the
strategy is :class:`SingleDeviceXLAStrategy` (its precision plugin, checkpoint IO, identity
``reduce`` / no-op ``barrier``) plus a mesh and a loader that shards each batch as it copies it
to the devices (``MpDeviceLoader`` with an input sharding: the copy runs in background threads,
off the step).

Settings:
- ``--trainer.strategy spmd`` (the default of ``--accelerator tpu``); ``--trainer.strategy xla``
  is Lightning's ``xmp.spawn`` route, one process per core.
- ``data.batch_size`` stays per device: the host's loader yields ``batch_size`` x devices rows
  (:attr:`SPMDStrategy.data_parallel_size`), so the seed's 64 is 512 a step on a v3-8, as with
  ``xmp.spawn``. Batch norm normalises over the global batch (SPMD is one big device), where
  ``xmp.spawn`` normalises per core.
- ``scripts/fit.py --xla_cpu_devices N`` rehearses the run on N XLA CPU devices of any machine
  (:class:`XLACPUAccelerator`): same strategy, same graphs, a few steps of the exact config.

One host only: with several processes (a TPU pod) the strategy refuses to start; pods use
``--trainer.strategy xla`` (docs/scaling.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from lightning.pytorch.accelerators import XLAAccelerator
from lightning.pytorch.strategies import (
    SingleDeviceStrategy,
    SingleDeviceXLAStrategy,
    StrategyRegistry,
)
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor


class XLACPUAccelerator(XLAAccelerator):
    """torch-xla's CPU devices (``PJRT_DEVICE=CPU``, ``CPU_NUM_DEVICES`` of them) as an XLA
    accelerator: what ``--xla_cpu_devices N`` trains on. Lightning's own accelerator looks for TPU
    chips and finds none on a CPU machine. Reads the environment only: it never starts the XLA
    runtime (the strategy's ``setup_environment`` does, after switching SPMD on)."""

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def auto_device_count() -> int:
        return int(os.environ.get("CPU_NUM_DEVICES", "1"))

    @staticmethod
    def parse_devices(devices) -> int:
        have = XLACPUAccelerator.auto_device_count()
        if devices in ("auto", -1, "-1", None):
            return have
        n = int(devices)
        if n != have:
            raise ValueError(
                f"trainer.devices {n}: this run has {have} XLA CPU device(s) "
                f"(--xla_cpu_devices {n} sets them up)"
            )
        return n

    @staticmethod
    def get_parallel_devices(devices) -> list[torch.device]:
        return [torch.device("xla", i) for i in range(int(devices))]


def check_batch_rows(batch: Mapping[str, Tensor], devices: int) -> None:
    """Refuse a batch whose rows do not split evenly over ``devices`` (torch-xla would pad the
    shards silently): one line naming the tensor, its rows and the device count."""
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.dim() and value.shape[0] % devices:
            raise ValueError(
                f"batch[{key!r}] has {value.shape[0]} rows, which do not split over {devices} "
                "devices: data.batch_size is per device, the loader's batch must be a multiple "
                "of the device count"
            )


class RowSharding:
    """Input sharding for ``MpDeviceLoader``: every tensor of a batch split along its first axis
    over the mesh's ``data`` axis, whatever its rank (a single ``ShardingSpec`` fits one rank, a
    dict of them one set of keys)."""

    minibatch = False  # the loader's batch is the global batch (one host)

    def __init__(self, mesh):
        self.mesh = mesh
        self._specs: dict[int, object] = {}

    def xla_spec(self, t: Tensor):
        if t.dim() == 0:
            return None
        if t.dim() not in self._specs:
            import torch_xla.distributed.spmd as xs

            axes = ("data",) + (None,) * (t.dim() - 1)
            self._specs[t.dim()] = xs.ShardingSpec(self.mesh, axes)
        return self._specs[t.dim()].xla_spec(t)


class SPMDStrategy(SingleDeviceXLAStrategy):
    """SPMD data parallel over every XLA device of this host (see the module doc).

    Args:
        loader_prefetch_size: host batches the loader's threads read ahead.
        device_prefetch_size: sharded batches held on the devices ahead of the step.
    """

    strategy_name = "spmd"

    def __init__(
        self,
        accelerator=None,
        checkpoint_io=None,
        precision_plugin=None,
        debug: bool = False,
        loader_prefetch_size: int = 8,
        device_prefetch_size: int = 4,
    ):
        # Not SingleDeviceXLAStrategy.__init__: it calls xm.xla_device(), which starts the XLA
        # runtime and fixes it in non-SPMD mode. Building a Trainer must not touch XLA at all
        # (the documented command lines are parsed in-process by the tests).
        SingleDeviceStrategy.__init__(
            self,
            device=torch.device("xla", 0),
            accelerator=accelerator,
            checkpoint_io=checkpoint_io,
            precision_plugin=precision_plugin,
        )
        self.debug = debug
        self.parallel_devices = None  # filled by Lightning from --trainer.devices
        self.mesh = None
        self.loader_prefetch_size = loader_prefetch_size
        self.device_prefetch_size = device_prefetch_size
        self._loaders: list = []

    @property
    def data_parallel_size(self) -> int:
        """Devices a batch is split over (1 before the mesh exists)."""
        return 1 if self.mesh is None else int(self.mesh.size())

    def setup_environment(self) -> None:
        """Switch SPMD on and build the mesh: the first XLA call of the run, before any tensor
        exists and before anything compiles; refuse what it cannot run, one line each."""
        if not isinstance(self.accelerator, XLAAccelerator):
            raise ValueError(
                f"trainer.strategy spmd needs an XLA accelerator (--accelerator tpu, or "
                f"--xla_cpu_devices N to rehearse on the CPU), not "
                f"{type(self.accelerator).__name__}; --trainer.strategy auto for it"
            )
        import torch_xla.distributed.spmd as xs
        import torch_xla.runtime as xr

        xr.use_spmd()
        if xr.process_count() > 1:
            raise ValueError(
                f"trainer.strategy spmd runs on one host; this run has {xr.process_count()} "
                "processes (a TPU pod): use --trainer.strategy xla"
            )
        n = xr.global_runtime_device_count()
        wanted = len(self.parallel_devices) if self.parallel_devices else n
        if wanted != n:
            raise ValueError(
                f"trainer.devices {wanted}: trainer.strategy spmd runs on every device of the "
                f"host, and this host has {n}"
            )
        self.mesh = xs.Mesh(np.arange(n), (n,), ("data",))
        xs.set_global_mesh(self.mesh)
        super().setup_environment()

    def process_dataloader(self, dataloader):
        from torch_xla.distributed.parallel_loader import MpDeviceLoader

        loader = MpDeviceLoader(
            dataloader,
            self.root_device,
            input_sharding=RowSharding(self.mesh),
            loader_prefetch_size=self.loader_prefetch_size,
            device_prefetch_size=self.device_prefetch_size,
        )
        loader.dataset = dataloader.dataset  # what Lightning reads back from a loader
        loader.batch_sampler = getattr(dataloader, "batch_sampler", None)
        self._loaders.append(loader)
        return loader

    def batch_to_device(self, batch, device=None, dataloader_idx: int = 0):
        if isinstance(batch, Mapping):
            check_batch_rows(batch, self.data_parallel_size)
        return super().batch_to_device(batch, device, dataloader_idx)

    def teardown(self) -> None:
        if self.mesh is not None:  # what a rehearsal checks: graphs compiled over the run
            import torch_xla.debug.metrics as met

            # CompileTime also counts the runtime's reassembly of each sharded result copied to
            # the host (ReplicateShardedData: a small identity graph, compiled on every copy);
            # the graph cache's misses are the program's own graphs
            graphs = int(met.counter_value("UncachedCompile") or 0)
            compiled = met.metric_data("CompileTime")
            reassembly = (0 if compiled is None else int(compiled[0])) - graphs
            rank_zero_info(
                f"spmd: {graphs} XLA graphs compiled on {self.data_parallel_size} device(s), "
                f"and {reassembly} reassemblies of sharded results copied to the host"
            )
        for loader in self._loaders:  # wake and join the prefetch threads
            parallel = getattr(loader, "_parallel_loader", None)
            if parallel is not None:
                parallel.close()
        self._loaders.clear()
        super().teardown()

    @classmethod
    def register_strategies(cls, strategy_registry) -> None:
        strategy_registry.register(
            cls.strategy_name,
            cls,
            description="SPMD data parallel over every XLA device of one host",
        )


SPMDStrategy.register_strategies(StrategyRegistry)
