"""What every task shares: the registry, the runtime (settings, device, model cache), the Hub client, checkpoint
loading policy, input decoding, errors, request batching, the Pipeline base and the one way options are declared
(``options``).

Modules here import nothing from the task packages, so any task may import them.
"""
