/** The console's pages and their URLs (the server answers the same shell for each). */
import type { Route } from './router.js';
import { overviewPage } from './pages/overview.js';
import { devicesPage } from './pages/devices.js';
import { devicePage } from './pages/device.js';
import { approvalsPage } from './pages/approvals.js';
import { tokensPage } from './pages/tokens.js';
import { groupsPage } from './pages/groups.js';
import { gatewaysPage } from './pages/gateways.js';
import { adminsPage } from './pages/admins.js';
import { auditPage } from './pages/audit.js';

export const ROUTES: readonly Route[] = [
  { path: '/', title: 'Overview', nav: 'Overview', load: () => overviewPage },
  { path: '/devices', title: 'Devices', nav: 'Devices', load: () => devicesPage },
  { path: '/devices/:id', title: 'Device', load: () => devicePage },
  { path: '/approvals', title: 'Pending approvals', nav: 'Approvals', load: () => approvalsPage },
  { path: '/tokens', title: 'Enrollment tokens', nav: 'Tokens', load: () => tokensPage },
  { path: '/groups', title: 'Groups and policy', nav: 'Groups', load: () => groupsPage },
  { path: '/gateways', title: 'Gateways', nav: 'Gateways', load: () => gatewaysPage },
  { path: '/admins', title: 'Admins', nav: 'Admins', minRole: 'admin', load: () => adminsPage },
  { path: '/audit', title: 'Audit log', nav: 'Audit', load: () => auditPage },
];
