"""A scripted MCP agent: the official MCP Python SDK (PyPI `mcp`) driving `sluice mcp`.

Usage: agent.py stdio SLUICE_BIN STEPS_JSON   (launches `SLUICE_BIN mcp` over stdio)
       agent.py http URL STEPS_JSON           (streamable HTTP, e.g. http://127.0.0.1:N/mcp)

STEPS_JSON is a list of {"tool": NAME, "args": {...}}, or {"raw": NAME, "args": ...} to send
arguments the schema does not allow. Prints one JSON object: the tools listed, and per step
what came back (structured content, text, isError, progress messages). `transcript` holds
every message the client received, for scanning for secrets.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
import mcp.types as types


async def run(session, steps, transcript):
    await session.initialize()
    listed = await session.list_tools()
    transcript.append(listed.model_dump(mode="json"))
    tools = {t.name: t.model_dump(mode="json") for t in listed.tools}
    results = []
    for step in steps:
        progress = []

        async def on_progress(value, total, message, progress=progress):
            progress.append(message)
            transcript.append({"progress": message})

        name = step.get("tool") or step.get("raw")
        try:
            result = await session.call_tool(
                name,
                step.get("args"),
                progress_callback=on_progress,
                read_timeout_seconds=120,
            )
        except Exception as e:  # a JSON-RPC error: the server must keep serving after it
            results.append({"tool": name, "protocol_error": str(e), "progress": progress})
            transcript.append({"error": str(e)})
            continue
        dumped = result.model_dump(mode="json")
        transcript.append(dumped)
        text = "\n".join(
            c.text for c in result.content if isinstance(c, types.TextContent)
        )
        results.append(
            {
                "tool": name,
                "is_error": bool(result.is_error),
                "structured": result.structured_content,
                "text": text,
                "progress": progress,
            }
        )
    return tools, results


async def main():
    mode, target, steps_file = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(steps_file) as f:
        steps = json.load(f)
    transcript = []
    info = types.Implementation(name="sluice-test-agent", version="0.1")
    if mode == "stdio":
        params = StdioServerParameters(command=target, args=["mcp"], env=dict(os.environ))
        transport = stdio_client(params)
    else:
        transport = streamable_http_client(target)
    async with transport as streams:
        async with ClientSession(streams[0], streams[1], client_info=info) as session:
            tools, results = await run(session, steps, transcript)
    print(json.dumps({"tools": tools, "results": results, "transcript": transcript}))


if __name__ == "__main__":
    asyncio.run(main())
