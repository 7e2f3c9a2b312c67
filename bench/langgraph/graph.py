"""One-node LangGraph graph for the Openloop side-by-side benchmark.

The node calls the benchmark's zero-latency fake provider through its OpenAI-compatible
chat completions endpoint, the way a LangGraph user would: `ChatOpenAI` pointed at
OPENAI_BASE_URL. The Openloop side calls the same fake with the same one-word input.
"""

import os

from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph

# Built once at import: the client (and its connection pool) is shared by all runs, as in
# a real deployment, so per-run cost is the graph run, not client construction.
llm = ChatOpenAI(
    base_url=os.environ["OPENAI_BASE_URL"],
    api_key=os.environ.get("OPENAI_API_KEY", "sk-bench"),
    model="bench-model",
)


async def call_model(state: MessagesState) -> dict:
    return {"messages": [await llm.ainvoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("call_model", call_model)
builder.add_edge(START, "call_model")
graph = builder.compile()
