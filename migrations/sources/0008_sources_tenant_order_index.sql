-- A tenant's sources are listed in id order, a page at a time. The only index led by the
-- tenant was (tenant_id, name), so the planner walked the primary key and filtered by tenant,
-- expecting a page early on; a tenant whose sources are the newest (or one the statistics do
-- not know yet) then costs a walk over every other tenant's rows: 90 ms and more for a page
-- of 100 beside 600,000 sources. With this index the page is read in order, as it is wanted.
create index sources_tenant_id_id_idx on sources (tenant_id, id);
