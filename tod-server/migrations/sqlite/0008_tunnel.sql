-- WireGuard: an agent is also its tunnel peer (one identity for both). Each tenant that enrols a
-- tunnel gets a /24 of the tunnel network (10.99.N.0/24, N = vpn_subnet, the lowest free from 1),
-- and each of its agents one address in it.
ALTER TABLE tenants ADD COLUMN vpn_subnet INTEGER;
CREATE UNIQUE INDEX uq_tenants_vpn_subnet ON tenants (vpn_subnet);
ALTER TABLE agents ADD COLUMN wg_public_key TEXT;
ALTER TABLE agents ADD COLUMN tunnel_address TEXT;
CREATE UNIQUE INDEX uq_agents_wg_public_key ON agents (wg_public_key);
CREATE UNIQUE INDEX uq_agents_tunnel_address ON agents (tunnel_address);
