"""The words and states every document reads: a report's words in its own language
(``report_words``), the AI disclosure sentence (``disclosure``), each finding's one state, the
AI's and the signer's (``finding_states``)."""
