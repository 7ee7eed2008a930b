package bus

// Module names a bus module. The constants are the names edgenode's own modules
// register with and the names KubeEdge's cloud modules use as route.source
// (docs/protocol.md 1.5). The wire spelling of the v0.3 era differs for
// MetaManager; Encode maps it.
type Module string

// Modules of the edge node (docs/protocol.md 1.5, v1.23.1 spelling).
const (
	ModuleHub        Module = "websocket"   // EdgeHub
	ModuleMeta       Module = "metamanager" // MetaManager
	ModulePod        Module = "edged"       // Edged
	ModuleTwin       Module = "twin"        // DeviceTwin
	ModuleMQTT       Module = "eventbus"    // EventBus
	ModuleNodeStatus Module = "nodestatus"  // node status and lease (edged's part of it; no KubeEdge name of its own)
	ModuleEdgeHub    Module = "edgehub"     // source of node/connection events
	ModuleBusSrc     Module = "bus"         // source of messages from MQTT to twin and cloud
	ModuleDMI        Module = "dmi"         // the DMI server and client for mappers (edgecore's DMI worker)
	ModuleTest       Module = "testManager" // KubeEdge's test harness module
)

// Cloud module names seen in route.source (docs/protocol.md 1.5).
const (
	SourceController        Module = "controller"     // v0.3.0 edge controller
	SourceEdgeController    Module = "edgecontroller" // v1.23.1 edge controller
	SourceDeviceController  Module = "devicecontroller"
	SourceEdgeMgr           Module = "edgemgr"
	SourceCloudHub          Module = "cloudhub"
	SourcePolicyController  Module = "policycontroller"
	SourceDynamicController Module = "dynamiccontroller"
	SourceSyncController    Module = "synccontroller"
	SourceTaskManager       Module = "taskmanager"
	SourceNodeUpgrade       Module = "nodeupgradejobcontroller"
	SourceRouterEventBus    Module = "router_eventbus"
	SourceRouterServiceBus  Module = "router_servicebus"
	SourceFuncMgr           Module = "funcmgr"
	SourceEdgeFunction      Module = "edgefunction"
	// SourceMetaManagerV03 is MetaManager's name in v0.3.0; it reaches the
	// wire as the source of the podstatus resync (docs/protocol.md 8 item 6).
	SourceMetaManagerV03 Module = "metaManager"
)

// IsEdgeController reports whether m is the edge controller of either era
// (docs/protocol.md 8 item 7).
func (m Module) IsEdgeController() bool {
	return m == SourceController || m == SourceEdgeController
}

// IsDeviceController reports whether m is the cloud's device controller of
// either era.
func (m Module) IsDeviceController() bool {
	return m == SourceDeviceController || m == SourceEdgeMgr
}

// Group names a beehive group (Send2Group) or a route.group on the wire.
type Group string

// Beehive groups (docs/protocol.md 1.5).
const (
	GroupHub  Group = "hub"
	GroupMeta Group = "meta"
	GroupPod  Group = "edged"
	GroupTwin Group = "twin"
	GroupBus  Group = "bus"
)

// Route groups on the wire (docs/protocol.md 1.5, 2.1, 2.4).
const (
	GroupResource    Group = "resource"
	GroupUser        Group = "user"
	GroupFunc        Group = "func"
	GroupApp         Group = "app"
	GroupTaskManager Group = "taskmanager"
)

// Op is a message operation (docs/protocol.md 1.4).
type Op string

// Operations of both eras (docs/protocol.md 1.4, 3.2, 4.3).
const (
	OpInsert        Op = "insert"
	OpDelete        Op = "delete"
	OpQuery         Op = "query"
	OpUpdate        Op = "update"
	OpPatch         Op = "patch"
	OpUpload        Op = "upload"
	OpResponse      Op = "response"
	OpError         Op = "error"
	OpKeepalive     Op = "keepalive"
	OpConnect       Op = "connect" // node connection, v1.23.1
	OpPublish       Op = "publish" // node connection (v0.3.0) and MQTT publish
	OpSubscribe     Op = "subscribe"
	OpUnsubscribe   Op = "unsubscribe"
	OpMessage       Op = "message"
	OpGet           Op = "get"
	OpGetResult     Op = "get_result"
	OpList          Op = "list"
	OpDetail        Op = "detail"
	OpDelta         Op = "delta"
	OpDocument      Op = "document"
	OpUpdated       Op = "updated"
	OpDeleted       Op = "deleted"
	OpConnected     Op = "connected"
	OpDisconnected  Op = "disconnected"
	OpUnholdUpgrade Op = "unhold-upgrade"
	OpAction        Op = "action"
	OpActionResult  Op = "action_result"
	OpMetaSync      Op = "meta-internal-sync"
	OpPing          Op = "ping"
	OpPong          Op = "pong"
	OpConfig        Op = "config"
)

// Kind is a resource type, the middle token of an edge-side resource path
// (docs/protocol.md 1.6, 1.7).
type Kind string

// Resource types of both eras (docs/protocol.md 1.6).
const (
	KindPod                  Kind = "pod"
	KindConfigMap            Kind = "configmap"
	KindSecret               Kind = "secret"
	KindNode                 Kind = "node"
	KindPodList              Kind = "podlist"
	KindPodStatus            Kind = "podstatus"
	KindNodeStatus           Kind = "nodestatus"
	KindEvent                Kind = "event"
	KindServiceAccountToken  Kind = "serviceaccounttoken"
	KindPodPatch             Kind = "podpatch"
	KindNodePatch            Kind = "nodepatch"
	KindRule                 Kind = "rule"
	KindRuleEndpoint         Kind = "ruleendpoint"
	KindRuleStatus           Kind = "rulestatus"
	KindLease                Kind = "lease"
	KindServiceAccountAccess Kind = "serviceaccountaccess"
	KindCSR                  Kind = "certificatesigningrequest"
	KindKubeCA               Kind = "k8s/ca.crt"
	KindService              Kind = "service"
	KindEndpoints            Kind = "endpoints"
	KindPV                   Kind = "persistentvolume"
	KindPVC                  Kind = "persistentvolumeclaim"
	KindVolumeAttachment     Kind = "volumeattachment"
	KindVolume               Kind = "volume"
	KindDevice               Kind = "device"
	KindDeviceModel          Kind = "devicemodel"  // v1beta1 DeviceModel (v1.15+)
	KindDeviceMapper         Kind = "devicemapper" // a mapper's DMI registration, stored by the edge
)

// Device and twin resources, and the edge-internal node connection resource
// (docs/protocol.md 1.6).
const (
	ResMembership       = "membership"
	ResMembershipDetail = "membership/detail"
	ResTwin             = "twin"
	ResAuthInfo         = "auth_info"
	ResTwinEdgeUpdated  = "twin/edge_updated"  // device/<id>/twin/edge_updated
	ResTwinCloudUpdated = "twin/cloud_updated" // device/<id>/twin/cloud_updated
	ResDeviceState      = "state"              // device/<id>/state, v0.3.0
	ResDeviceStateV123  = "state/update"       // device/<id>/state/update, v1.23.1
	ResNodeConnection   = "node/connection"
	ResNode             = "node" // resource of the keepalive
)

// Contents of node/connection messages (docs/protocol.md 1.6).
const (
	CloudConnected    = "cloud_connected"
	CloudDisconnected = "cloud_disconnected"
)

// NullNamespace is the namespace of cluster-scoped objects in v1.23.1
// resource paths, e.g. null/node/<name> (docs/protocol.md 1.7).
const NullNamespace = "null"
