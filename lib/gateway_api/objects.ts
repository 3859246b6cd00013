/**
 * The parts of the Kubernetes objects that the Gateway API and Ingress
 * translation reads, as the API server serves them (JSON field names).
 * Every field the API marks optional is optional here: the translation
 * applies the specification's defaults itself, so an object that skipped
 * the server's defaulting (a test, an older CRD) reads the same.
 *
 * @module
 */

/** The API group of the Gateway API kinds. */
export const GATEWAY_GROUP = "gateway.networking.k8s.io";

/** `metadata`, as far as translation and status read it. */
export interface ObjectMeta {
  readonly name: string;
  /** Absent on cluster-scoped objects (GatewayClass, IngressClass, Namespace). */
  readonly namespace?: string;
  /** Increases with every spec change; conditions report it as `observedGeneration`. */
  readonly generation?: number;
  /** RFC 3339, e.g. `2024-05-01T10:00:00Z`: the older route wins a tie. */
  readonly creationTimestamp?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A `metav1.Condition`. */
export interface Condition {
  readonly type: string;
  readonly status: "True" | "False" | "Unknown";
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
  /** RFC 3339; changes only when `status` changes. */
  readonly lastTransitionTime: string;
}

/** `metav1.LabelSelector`. */
export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly {
    readonly key: string;
    readonly operator: "In" | "NotIn" | "Exists" | "DoesNotExist" | string;
    readonly values?: readonly string[];
  }[];
}

/** A Namespace: its labels decide `allowedRoutes.namespaces.from: Selector`. */
export interface Namespace {
  readonly metadata: ObjectMeta;
}

/** A Service: the port a backendRef names must be one of its ports. */
export interface Service {
  readonly metadata: ObjectMeta & { readonly namespace: string };
  readonly spec?: {
    readonly ports?: readonly { readonly name?: string; readonly port: number }[];
  };
}

/** A Secret; only `kubernetes.io/tls` ones are certificates. */
export interface Secret {
  readonly metadata: ObjectMeta & { readonly namespace: string };
  readonly type?: string;
  /** Base64, as the API serves `data`: `tls.crt`, `tls.key`. */
  readonly data?: Readonly<Record<string, string>>;
}

// --- gateway.networking.k8s.io/v1 -------------------------------------------

/** GatewayClass. */
export interface GatewayClass {
  readonly metadata: ObjectMeta;
  readonly spec: {
    readonly controllerName: string;
    readonly parametersRef?: {
      readonly group: string;
      readonly kind: string;
      readonly name: string;
      readonly namespace?: string;
    };
    readonly description?: string;
  };
  readonly status?: GatewayClassStatus;
}

/** GatewayClass `status`. */
export interface GatewayClassStatus {
  readonly conditions?: readonly Condition[];
}

/** A reference to a Secret (or another kind) from a listener's `tls.certificateRefs`. */
export interface SecretObjectReference {
  /** Default "" (core). */
  readonly group?: string;
  /** Default `Secret`. */
  readonly kind?: string;
  readonly name: string;
  /** Default: the Gateway's namespace. */
  readonly namespace?: string;
}

/** One entry of a Gateway's `spec.listeners`. */
export interface Listener {
  readonly name: string;
  /** Absent: every host. `*.example.com` matches one or more labels. */
  readonly hostname?: string;
  readonly port: number;
  /** `HTTP` and `HTTPS` are served; `TLS`, `TCP`, `UDP` are not. */
  readonly protocol: string;
  readonly tls?: {
    /** Default `Terminate`; `Passthrough` is not served. */
    readonly mode?: string;
    readonly certificateRefs?: readonly SecretObjectReference[];
    readonly options?: Readonly<Record<string, string>>;
  };
  readonly allowedRoutes?: {
    readonly namespaces?: {
      /** Default `Same`. */
      readonly from?: "All" | "Same" | "Selector" | "None" | string;
      readonly selector?: LabelSelector;
    };
    /** Absent: HTTPRoute, for HTTP and HTTPS listeners. */
    readonly kinds?: readonly { readonly group?: string; readonly kind: string }[];
  };
}

/** Gateway. */
export interface Gateway {
  readonly metadata: ObjectMeta & { readonly namespace: string };
  readonly spec: {
    readonly gatewayClassName: string;
    readonly listeners: readonly Listener[];
    readonly addresses?: readonly { readonly type?: string; readonly value: string }[];
  };
  readonly status?: GatewayStatus;
}

/** One `status.listeners` entry of a Gateway. */
export interface ListenerStatus {
  readonly name: string;
  readonly supportedKinds: readonly { readonly group: string; readonly kind: string }[];
  readonly attachedRoutes: number;
  readonly conditions: readonly Condition[];
}

/** Gateway `status`. */
export interface GatewayStatus {
  readonly addresses?: readonly {
    readonly type: "IPAddress" | "Hostname";
    readonly value: string;
  }[];
  readonly conditions?: readonly Condition[];
  readonly listeners?: readonly ListenerStatus[];
}

/** A route's `spec.parentRefs` entry. */
export interface ParentReference {
  /** Default `gateway.networking.k8s.io`. */
  readonly group?: string;
  /** Default `Gateway`. */
  readonly kind?: string;
  /** Default: the route's namespace. */
  readonly namespace?: string;
  readonly name: string;
  /** A listener's name. */
  readonly sectionName?: string;
  /** A listener's port. */
  readonly port?: number;
}

/** A backend reference (a rule's `backendRefs`, a mirror's `backendRef`). */
export interface BackendObjectReference {
  /** Default "" (core). */
  readonly group?: string;
  /** Default `Service`. */
  readonly kind?: string;
  readonly name: string;
  /** Default: the route's namespace. */
  readonly namespace?: string;
  /** Required for a Service: the Service port (not the target port). */
  readonly port?: number;
}

/** `set` / `add` / `remove` of a header modifier filter. */
export interface HTTPHeaderFilter {
  readonly set?: readonly { readonly name: string; readonly value: string }[];
  readonly add?: readonly { readonly name: string; readonly value: string }[];
  readonly remove?: readonly string[];
}

/** How a redirect or rewrite changes the path. */
export interface HTTPPathModifier {
  readonly type: "ReplaceFullPath" | "ReplacePrefixMatch" | string;
  readonly replaceFullPath?: string;
  readonly replacePrefixMatch?: string;
}

/** One entry of a rule's `filters`. */
export interface HTTPRouteFilter {
  readonly type: string;
  readonly requestHeaderModifier?: HTTPHeaderFilter;
  readonly responseHeaderModifier?: HTTPHeaderFilter;
  readonly requestRedirect?: {
    readonly scheme?: string;
    readonly hostname?: string;
    readonly path?: HTTPPathModifier;
    readonly port?: number;
    /** Default 302. */
    readonly statusCode?: number;
  };
  readonly urlRewrite?: { readonly hostname?: string; readonly path?: HTTPPathModifier };
  readonly requestMirror?: {
    readonly backendRef: BackendObjectReference;
    readonly percent?: number;
    readonly fraction?: { readonly numerator: number; readonly denominator?: number };
  };
  readonly extensionRef?: { readonly group: string; readonly kind: string; readonly name: string };
}

/** One entry of a rule's `matches`: every part given must match. */
export interface HTTPRouteMatch {
  /** Default `{type: PathPrefix, value: "/"}`. */
  readonly path?: { readonly type?: string; readonly value?: string };
  readonly headers?: readonly {
    readonly type?: string;
    readonly name: string;
    readonly value: string;
  }[];
  readonly queryParams?: readonly {
    readonly type?: string;
    readonly name: string;
    readonly value: string;
  }[];
  readonly method?: string;
}

/** One entry of an HTTPRoute's `spec.rules`. */
export interface HTTPRouteRule {
  readonly name?: string;
  /** Absent or empty: one match, `PathPrefix /`. */
  readonly matches?: readonly HTTPRouteMatch[];
  readonly filters?: readonly HTTPRouteFilter[];
  readonly backendRefs?: readonly (BackendObjectReference & {
    /** Default 1. */
    readonly weight?: number;
    readonly filters?: readonly HTTPRouteFilter[];
  })[];
  /** Gateway API durations (GEP-2257): `10s`, `500ms`, `1m30s`. */
  readonly timeouts?: { readonly request?: string; readonly backendRequest?: string };
}

/** HTTPRoute. */
export interface HTTPRoute {
  readonly metadata: ObjectMeta & { readonly namespace: string };
  readonly spec: {
    readonly parentRefs?: readonly ParentReference[];
    readonly hostnames?: readonly string[];
    readonly rules?: readonly HTTPRouteRule[];
  };
  readonly status?: HTTPRouteStatus;
}

/** One `status.parents` entry of a route: what one controller says about one parent. */
export interface RouteParentStatus {
  readonly parentRef: ParentReference;
  readonly controllerName: string;
  readonly conditions: readonly Condition[];
}

/** HTTPRoute `status`. */
export interface HTTPRouteStatus {
  readonly parents: readonly RouteParentStatus[];
}

/** ReferenceGrant (v1beta1 and v1 read alike): lets `from` refer to `to` in its namespace. */
export interface ReferenceGrant {
  readonly metadata: ObjectMeta & { readonly namespace: string };
  readonly spec: {
    readonly from: readonly {
      readonly group: string;
      readonly kind: string;
      readonly namespace: string;
    }[];
    readonly to: readonly {
      readonly group: string;
      readonly kind: string;
      readonly name?: string;
    }[];
  };
}

// --- networking.k8s.io/v1 ----------------------------------------------------

/** IngressClass. */
export interface IngressClass {
  readonly metadata: ObjectMeta;
  readonly spec?: { readonly controller?: string };
}

/** An Ingress backend: a Service port by number or by name, or another resource. */
export interface IngressBackend {
  readonly service?: {
    readonly name: string;
    readonly port?: { readonly number?: number; readonly name?: string };
  };
  readonly resource?: { readonly apiGroup?: string; readonly kind: string; readonly name: string };
}

/** Ingress. */
export interface Ingress {
  readonly metadata: ObjectMeta & { readonly namespace: string };
  readonly spec?: {
    readonly ingressClassName?: string;
    readonly defaultBackend?: IngressBackend;
    readonly tls?: readonly { readonly hosts?: readonly string[]; readonly secretName?: string }[];
    readonly rules?: readonly {
      /** Absent: every host. `*.example.com` matches exactly one label. */
      readonly host?: string;
      readonly http?: {
        readonly paths: readonly {
          readonly path?: string;
          readonly pathType: "Exact" | "Prefix" | "ImplementationSpecific" | string;
          readonly backend: IngressBackend;
        }[];
      };
    }[];
  };
  readonly status?: IngressStatus;
}

/** Ingress `status`. */
export interface IngressStatus {
  readonly loadBalancer: {
    readonly ingress?: readonly { readonly ip?: string; readonly hostname?: string }[];
  };
}
