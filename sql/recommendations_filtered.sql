-- Least-privilege recommendations, of one agent and one category when given (NULL: all).
SELECT *
FROM recommendations
WHERE (CAST($agent_id AS VARCHAR) IS NULL OR agent_id = $agent_id)
  AND (CAST($category AS VARCHAR) IS NULL OR category = $category)
