"""The threshold engine: (hardware, model, context[, policy]) -> ThresholdResult.

Imports without kopf or the kubernetes client.

Public API::

    compute(hardware: HardwareProfile, model: ModelSpec, context: DeploymentContext,
            policy: Policy | None = None) -> ThresholdResult
"""
