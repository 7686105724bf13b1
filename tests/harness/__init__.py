"""The test harness, shared with bench/: real launcher and vLLM processes, a stand-in vLLM, the container
runs, the SSE load generator and the fixtures' paths."""
