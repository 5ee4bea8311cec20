"""qc station agent: inspects locally with the qc ONNX core, keeps every result in a durable
outbox until the service has it, and signals verdicts to the line (docs/edge.md).
"""
