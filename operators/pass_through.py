"""Forwards each message unchanged (graph plumbing checks, overhead benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

from surgseg.operators.base import Message, SurgsegOperator


@dataclass
class PassThroughConfig:
    delay_ms: float = 0.0
    """Busy time per frame, to stand in for a slow stage in tests."""


class PassThrough(SurgsegOperator):
    Config = PassThroughConfig
    inputs = ("in",)
    outputs = ("out",)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        if self.config.delay_ms > 0:
            import time

            time.sleep(self.config.delay_ms / 1000)
        return {"out": inputs["in"]}
