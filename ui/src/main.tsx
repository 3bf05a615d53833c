import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { Account, useSession } from './account';
import { LabsPage } from './labs';
import { FederationPage } from './federation';
import { SearchPage } from './search';
import './style.css';

type Theme = 'light' | 'dark';

function initialTheme(): Theme {
  const saved = localStorage.getItem('orrery-theme');
  if (saved === 'light' || saved === 'dark') return saved;
  return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

type Route = 'search' | 'federation' | 'labs';

function route(): Route {
  if (location.hash.startsWith('#/federation')) return 'federation';
  if (location.hash.startsWith('#/labs')) return 'labs';
  return 'search';
}

function App() {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  const [page, setPage] = useState<Route>(route);
  const [session, reloadSession] = useSession();
  useEffect(() => {
    const onHash = () => setPage(route());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem('orrery-theme', theme);
  }, [theme]);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">Orrery</span>
        <nav aria-label="Main">
          <a href="#/search" aria-current={page === 'search' ? 'page' : undefined}>Search</a>
          <a href="#/federation" aria-current={page === 'federation' ? 'page' : undefined}>Federation</a>
          <a href="#/labs" aria-current={page === 'labs' ? 'page' : undefined}>Labs</a>
        </nav>
        <Account state={session} reload={reloadSession} />
        <button
          type="button"
          class="theme"
          aria-label={theme === 'dark' ? 'Use the light theme' : 'Use the dark theme'}
          onClick={() => setTheme(theme === 'dark' ? 'light' : 'dark')}
        >
          {theme === 'dark' ? 'Light' : 'Dark'}
        </button>
      </header>
      <main id="main">
        {page === 'search' && <SearchPage />}
        {page === 'federation' && <FederationPage />}
        {page === 'labs' && <LabsPage session={session} />}
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root) render(<App />, root);
