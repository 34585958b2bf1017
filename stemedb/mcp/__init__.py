"""`stemedb mcp`: a Model Context Protocol server in front of a StemeDB server.

`tools` holds the tools (reads, signed writes), `render` the text an LLM
reads for `explain`, `server` assembles the MCP server (tools, resources)
and runs it over stdio or streamable HTTP. docs/agents.md shows how to
register it with MCP clients.
"""
