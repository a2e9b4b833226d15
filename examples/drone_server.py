"""An MCP server with the drone product sheets (stdio), written with the ``mcp`` SDK.

``examples/drone_mcp.yaml`` starts it; any MCP client can too:
``python examples/drone_server.py``.
"""

from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

SHEETS = Path(__file__).with_name("drone_docs")
server = MCPServer("drone-sheets", log_level="WARNING")


@server.tool()
def list_drones() -> list[str]:
    """The drones there is a product sheet for."""
    return sorted(p.stem for p in SHEETS.glob("*.txt"))


@server.tool()
def drone_sheet(name: str) -> str:
    """The product sheet of one drone (battery life, weight, speed), e.g. name="falcon"."""
    path = SHEETS / f"{name.strip().lower()}.txt"
    if path.parent != SHEETS or not path.is_file():
        raise ToolError(f"no sheet for {name!r}; drones: {', '.join(list_drones())}")
    return path.read_text().strip()


if __name__ == "__main__":
    server.run()
