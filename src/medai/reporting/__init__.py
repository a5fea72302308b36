"""Report drafting: captions, caption metrics, knowledge base, retrieval, LLM drafts."""
