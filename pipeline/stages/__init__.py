"""Stage entry points: each module has `run(params)` that reads inputs, calls pure functions, writes outputs."""
