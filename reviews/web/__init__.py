"""The review pages: function views by page group, their forms and URLs.

- `views_inbox`: the inbox; `inbox`: the queries behind it and each row's summaries;
- `views_request`: a request's page and its actions (vote, comment, cancel, retry, status poll);
- `views_promotion`: the promotion form on its own page;
- `views_rollback`, `views_break_glass`: the model page's emergency buttons, and the report;
  `kept`: what was typed into the model page's form, kept through a refusal's redirect;
- `views_audit`: the audit trail and its CSV download (staff);
- `views_settings`: a user's notification settings;
- `forms`, `urls` (namespace `reviews`).
"""
