"""CDK constructs with safe defaults, synth-time rules and packaging, for apps built on asyncstack.runtime."""
