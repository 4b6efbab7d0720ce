"""Asking the LLM: the Triton client, the budget gate, cache keys and sampling, and the
ask/parse/repair/validate/retry loop every stage that needs the model goes through."""
