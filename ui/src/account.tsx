import { useEffect, useState } from 'preact/hooks';
import { type Me, type SignInProvider, session, signOut } from './api';

export type SessionState =
  | { kind: 'asking' }
  | { kind: 'signed-in'; me: Me }
  | { kind: 'signed-out'; providers: SignInProvider[] }
  | { kind: 'failed'; why: string };

/// This browser's session, asked of the node; `reload` asks again.
export function useSession(): [SessionState, () => Promise<void>] {
  const [state, setState] = useState<SessionState>({ kind: 'asking' });
  const reload = async () => {
    try {
      const s = await session();
      setState(s.signed_in ? { kind: 'signed-in', me: s.signed_in } : { kind: 'signed-out', providers: s.providers });
    } catch (e) {
      setState({ kind: 'failed', why: e instanceof Error ? e.message : String(e) });
    }
  };
  useEffect(() => {
    void reload();
  }, []);
  return [state, reload];
}

/// Links to sign in with each of the node's providers.
export function SignInLinks({ providers }: { providers: SignInProvider[] }) {
  if (providers.length === 0) {
    return (
      <span class="muted" title="This node has no sign-in; its operator makes API tokens on its command line.">
        Not signed in
      </span>
    );
  }
  return (
    <>
      {providers.map((p) => (
        <a class="signin" href={p.url} key={p.id}>
          Sign in{providers.length > 1 ? ` with ${p.name}` : ''}
        </a>
      ))}
    </>
  );
}

/// The header's account corner: who is signed in (with their verified ORCID iD), and signing
/// out; or the node's ways to sign in.
export function Account({ state, reload }: { state: SessionState; reload: () => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  const [failed, setFailed] = useState<string | null>(null);

  const leave = async () => {
    setBusy(true);
    setFailed(null);
    try {
      await signOut();
      await reload();
    } catch (e) {
      setFailed(`Signing out failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      setBusy(false);
    }
  };

  switch (state.kind) {
    case 'asking':
      return <div class="account" aria-busy="true" />;
    case 'failed':
      return (
        <div class="account" role="status">
          <span class="error">{state.why}</span>
        </div>
      );
    case 'signed-out':
      return (
        <div class="account">
          <SignInLinks providers={state.providers} />
        </div>
      );
    case 'signed-in':
      return (
        <div class="account">
          <span class="who" data-author={state.me.author}>
            <span class="name">{state.me.name}</span>
            {state.me.orcid && (
              <a
                class="orcid"
                href={`https://orcid.org/${state.me.orcid}`}
                title="ORCID iD verified by this node"
                rel="noopener noreferrer"
              >
                {state.me.orcid}
              </a>
            )}
          </span>
          <button type="button" onClick={() => void leave()} disabled={busy}>
            Sign out
          </button>
          {failed && (
            <span class="error" role="alert">
              {failed}
            </span>
          )}
        </div>
      );
  }
}
