"""The work on a study: the AI's analysis, re-analysis, the radiologist's review and sign-off,
retraction, chat and the series viewer."""
